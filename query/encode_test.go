package query

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/store"
)

// randomNotification makes a notification with the awkward values the
// encoders must get right: escapes, invalid UTF-8, absent and present
// optional fields, times in several zones.
func randomNotification(rng *rand.Rand) *store.Notification {
	pieces := []string{"a", "order-1", "<", ">", "&", `"`, `\`, "\n", "\t", "\x00", "\x1f", "\x7f", "é", "\u2028",
		"\u2029", "\xff", "\xe2\x80", "日本", "🙂", " ", "/", "'"}
	str := func() string {
		var sb strings.Builder
		for range rng.IntN(6) {
			sb.WriteString(pieces[rng.IntN(len(pieces))])
		}
		return sb.String()
	}
	zones := []*time.Location{time.UTC, time.Local, time.FixedZone("x", 5*3600+30*60), time.FixedZone("y", -8*3600)}
	tm := func() time.Time {
		return time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)/1000*1000).In(zones[rng.IntN(len(zones))])
	}
	maybeTime := func() *time.Time {
		if rng.IntN(2) == 0 {
			return nil
		}
		t := tm()
		return &t
	}
	maybeStr := func() *string {
		if rng.IntN(2) == 0 {
			return nil
		}
		s := str()
		return &s
	}
	// Payloads as the write paths store them: compact, escaped for HTML by
	// the task encoding, or not (HTTP ingest compacts without escaping).
	payloads := []string{`{}`, `{"a":1}`, `{"a":[1,2.5e3,true,null]}`, `"\u003cscript\u003e\u0026"`, `"<script>&"`,
		`{"s":"\u2028"}`, "{\"s\":\"\u2028\"}", `[]`, `0`}
	n := &store.Notification{
		ID: uuid.New(), ReceiverID: uuid.New(), EventType: str(), IdempotencyKey: str(), CallbackURL: maybeStr(),
		Payload: json.RawMessage(payloads[rng.IntN(len(payloads))]), Status: str(), Attempts: rng.IntN(20) - 2,
		MaxAttempts: rng.IntN(100), CreatedAt: tm(), NextAttemptAt: maybeTime(), LastAttemptAt: maybeTime(),
		DeliveredAt: maybeTime(), LastError: maybeStr(),
	}
	if rng.IntN(2) == 0 {
		code := rng.IntN(600)
		n.LastStatusCode = &code
	}
	return n
}

func randomAttempts(rng *rand.Rand) []attemptView {
	var as []store.Attempt
	for i := range rng.IntN(4) {
		as = append(as, store.Attempt{AttemptNo: i + 1 - 2*rng.IntN(2), StartedAt: time.Unix(rng.Int64N(4e9), 0),
			Duration: time.Duration(rng.Int64N(1e10)), StatusCode: rng.IntN(2) * 500, Outcome: "failure",
			Error: []string{"", "HTTP 500", "<timeout>"}[rng.IntN(3)], ResponseBody: []string{"", "ok", "\xff&"}[rng.IntN(3)]})
	}
	return attemptViews(as)
}

// encodeReference is what Echo's c.JSON wrote: json.Encoder's output.
func encodeReference(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestEncodersMatchEncodingJSON: the encoders write what c.JSON wrote
// before them, byte for byte, except that a payload stored without HTML
// escaping stays so (the same JSON value).
func TestEncodersMatchEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		var rows []*store.Notification
		for range rng.IntN(5) {
			rows = append(rows, randomNotification(rng))
		}
		if rows == nil {
			rows = []*store.Notification{}
		}
		page := listPage{Data: rows, HasMore: rng.IntN(2) == 0}
		if page.HasMore {
			cur := encodeCursor(store.Position{CreatedAt: time.Now(), ID: uuid.New()}, rng.IntN(2) == 0)
			page.NextCursor = &cur
		}
		got, err := page.appendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		checkEncoding(t, fmt.Sprintf("page %d", i), got, encodeReference(t, page), rows...)

		v := notificationView{Notification: randomNotification(rng), DeliveryAttempts: randomAttempts(rng)}
		if got, err = v.appendJSON(nil); err != nil {
			t.Fatal(err)
		}
		checkEncoding(t, fmt.Sprintf("view %d", i), got, encodeReference(t, v), v.Notification)
	}
}

// checkEncoding compares got with encoding/json's want: the same bytes when
// every payload is as encoding/json would write it, else the same value.
func checkEncoding(t *testing.T, what string, got, want []byte, rows ...*store.Notification) {
	t.Helper()
	got = append(got, '\n')
	exact := true
	for _, n := range rows {
		if w, err := json.Marshal(n.Payload); err != nil || !bytes.Equal(w, n.Payload) {
			exact = false
		}
	}
	if exact {
		if !bytes.Equal(got, want) {
			t.Fatalf("%s:\n got %s\nwant %s", what, got, want)
		}
		return
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: not JSON (%v): %s", what, err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%s:\n got %s\nwant %s", what, got, want)
	}
}

// TestPayloadIsWrittenAsStored: the API shows the bytes the receiver got.
func TestPayloadIsWrittenAsStored(t *testing.T) {
	n := randomNotification(rand.New(rand.NewPCG(5, 6)))
	n.Payload = json.RawMessage(`{"html":"<b>&</b>","line":" "}`)
	got, err := (&listPage{Data: []*store.Notification{n}}).appendJSON(nil)
	if err != nil || !bytes.Contains(got, []byte(`,"payload":`+string(n.Payload)+`,`)) {
		t.Fatalf("%s (%v): payload not as stored", got, err)
	}
}

// TestEncodersFailLikeEncodingJSON: values encoding/json refuses (which made
// the API answer 500) are refused too; malformed payloads, which no write
// path stores, are not looked for.
func TestEncodersFailLikeEncodingJSON(t *testing.T) {
	bad := []func(n *store.Notification){
		func(n *store.Notification) { n.Payload = json.RawMessage{} },
		func(n *store.Notification) { n.CreatedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		func(n *store.Notification) { t := time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC); n.DeliveredAt = &t },
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i, spoil := range bad {
		n := randomNotification(rng)
		spoil(n)
		page := listPage{Data: []*store.Notification{n}}
		if _, err := json.Marshal(page); err == nil {
			t.Fatalf("case %d: encoding/json accepts it", i)
		}
		if got, err := page.appendJSON(nil); err == nil {
			t.Errorf("case %d: encoded as %s", i, got)
		}
	}
	// A nil payload is null, as encoding/json writes it.
	n := randomNotification(rng)
	n.Payload = nil
	page := listPage{Data: []*store.Notification{n}}
	got, err := page.appendJSON(nil)
	if want := encodeReference(t, page); err != nil || !bytes.Equal(append(got, '\n'), want) {
		t.Fatalf("nil payload: %s (%v), want %s", got, err, want)
	}
}

// TestPrettyStillIndents: ?pretty, which Echo honours on every JSON answer,
// still indents the answers that no longer go through c.JSON.
func TestPrettyStillIndents(t *testing.T) {
	a := newTestAPI(t)
	r := a.receiver()
	a.insert(r, "k<1>", "trade.paid")
	_, compact := a.do("GET", "/v1/notifications/by-key/k%3C1%3E", r.APIKey, nil)
	code, pretty := a.do("GET", "/v1/notifications/by-key/k%3C1%3E?pretty", r.APIKey, nil)
	var want bytes.Buffer
	if err := json.Indent(&want, bytes.TrimSuffix(compact, []byte("\n")), "", "  "); err != nil {
		t.Fatal(err)
	}
	want.WriteByte('\n')
	if code != http.StatusOK || !bytes.Equal(pretty, want.Bytes()) {
		t.Fatalf("%d %s\nwant %s", code, pretty, want.Bytes())
	}
}

func BenchmarkListPage(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	var rows []*store.Notification
	for range 50 {
		n := randomNotification(rng)
		n.EventType, n.IdempotencyKey, n.Status, n.Payload = "trade.paid", "q-123456", "delivered", benchPayload
		rows = append(rows, n)
	}
	page := listPage{Data: rows}
	b.Run("encoding/json", func(b *testing.B) {
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			_ = json.NewEncoder(&buf).Encode(page)
		}
	})
	b.Run("appendJSON", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf, _ = page.appendJSON(buf[:0])
		}
	})
}

// FuzzEncodeNotification: for any strings and numbers, the hand-written
// encoders write what encoding/json writes.
func FuzzEncodeNotification(f *testing.F) {
	f.Add("trade.paid", "order-1", "HTTP 500", "<b>&</b>", 3, int64(1e9), "\xff\u2028\x00")
	f.Add("", "", "", "", -1, int64(-62135596800), "")
	f.Fuzz(func(t *testing.T, eventType, key, lastError, body string, attempts int, unix int64, outcome string) {
		rng := rand.New(rand.NewPCG(uint64(attempts), uint64(unix)))
		n := randomNotification(rng)
		n.EventType, n.IdempotencyKey, n.LastError, n.Attempts = eventType, key, &lastError, attempts
		n.CreatedAt = time.Unix(unix, 0).UTC()
		n.Payload = json.RawMessage(`{"a":1}`)
		v := notificationView{Notification: n, DeliveryAttempts: attemptViews([]store.Attempt{{
			AttemptNo: attempts, StartedAt: n.CreatedAt, Outcome: outcome, Error: lastError, ResponseBody: body}})}
		want, wantErr := json.Marshal(v)
		got, err := v.appendJSON(nil)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("error %v, encoding/json's %v", err, wantErr)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	})
}
