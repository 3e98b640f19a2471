package circuit

import (
	"errors"
	"testing"
	"time"
)

func TestStateEncoding(t *testing.T) {
	t.Parallel()
	o := Open{Until: time.UnixMilli(1_800_000_000_123), Cooldown: 90 * time.Second}
	got, err := decode(encode(o))
	if err != nil || !got.Until.Equal(o.Until) || got.Cooldown != o.Cooldown {
		t.Fatalf("round trip: %+v %v, want %+v", got, err, o)
	}
	for _, bad := range []string{"", "123", "x:1", "1:y", "1:2:3"} {
		if _, err := decode(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("decode(%q) = %v, want ErrMalformed", bad, err)
		}
	}
}
