package query

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/store"
)

// FuzzCursor checks the list cursor codec. Decoding any text never panics
// and either yields a position or a 400 invalid_cursor error naming the
// cursor field; a position it yields encodes back to a cursor that decodes
// to the same position. Encoding any position (µs precision, as Postgres
// stores it) and decoding it in the same order gives it back exactly, and
// decoding it in the other order is refused.
func FuzzCursor(f *testing.F) {
	id := uuid.MustParse("0b6c3bde-8a6f-4f0b-9b8e-2f6a3c1d4e5f")
	at := time.Date(2026, 11, 21, 12, 0, 0, 123456000, time.UTC)
	for _, desc := range []bool{false, true} {
		f.Add(encodeCursor(store.Position{CreatedAt: at, ID: id}, desc), desc, at.UnixMicro(), id[:])
	}
	f.Add("", false, int64(0), []byte{})
	f.Add("AWQ", true, int64(-1), []byte{1, 2, 3})
	f.Add("AWEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", false, int64(-62135596800000000), make([]byte, 16))
	f.Add("////////////////////////////////////", true, int64(1<<62), []byte("0123456789abcdef"))

	f.Fuzz(func(t *testing.T, s string, descending bool, micros int64, idBytes []byte) {
		pos, err := decodeCursor(s, descending)
		if err != nil {
			var ae *APIError
			if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Code != "invalid_cursor" || ae.Field != "cursor" {
				t.Fatalf("decode %q: error %v is not a 400 invalid_cursor on field cursor", s, err)
			}
		} else {
			again, err := decodeCursor(encodeCursor(*pos, descending), descending)
			if err != nil || !again.CreatedAt.Equal(pos.CreatedAt) || again.ID != pos.ID {
				t.Fatalf("decode %q gave %+v, which re-encodes to %+v (%v)", s, pos, again, err)
			}
		}

		var want store.Position
		want.CreatedAt = time.UnixMicro(micros).UTC()
		copy(want.ID[:], idBytes)
		c := encodeCursor(want, descending)
		got, err := decodeCursor(c, descending)
		if err != nil {
			t.Fatalf("own cursor %q for %+v refused: %v", c, want, err)
		}
		if !got.CreatedAt.Equal(want.CreatedAt) || got.ID != want.ID {
			t.Fatalf("cursor %q round-trips %+v to %+v", c, want, got)
		}
		if _, err := decodeCursor(c, !descending); err == nil {
			t.Fatalf("cursor %q for one order accepted in the other", c)
		}
	})
}
