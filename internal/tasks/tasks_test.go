package tasks

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/taskauth"
)

func sampleTasks() []Deliver {
	id, rcv := uuid.MustParse("4d7f6c1e-1111-4222-8333-944455556666"), uuid.MustParse("0b9c4a2e-aaaa-4bbb-8ccc-ddddeeeeffff")
	at := time.Date(2026, 11, 22, 1, 2, 3, 456789000, time.UTC)
	return []Deliver{
		{ID: id, ReceiverID: rcv, EventType: "trade.paid", IdempotencyKey: "order-1", Payload: json.RawMessage(`{"amount":100,"s":"a,b}]\"c"}`), EnqueuedAt: at, Attempt: 1},
		{ID: id, ReceiverID: rcv, EventType: "t", IdempotencyKey: "k", CallbackURL: "https://example.com/cb?a=1&b=2", Payload: json.RawMessage(`[1,[2,{"x":null}]]`), EnqueuedAt: at.In(time.FixedZone("x", 3600)), Attempt: 7},
		{ID: id, ReceiverID: rcv, EventType: "t", IdempotencyKey: "k", Payload: json.RawMessage(`"just a string"`), EnqueuedAt: at, Manual: 3},
		{ID: id, ReceiverID: rcv, EventType: "ünïcode", IdempotencyKey: "tab\there", Payload: json.RawMessage(`123`), EnqueuedAt: at, Attempt: 2},
		{ID: id, ReceiverID: rcv, EventType: "<html>&", IdempotencyKey: "k", Payload: json.RawMessage(`null`), Attempt: 1},
	}
}

// What Task writes, Decode reads back as it was.
func TestDecodeRoundTrip(t *testing.T) {
	t.Parallel()
	for i, want := range sampleTasks() {
		task, err := want.Task(nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(task.Payload())
		if err != nil {
			t.Fatalf("task %d: %v", i, err)
		}
		if !got.EnqueuedAt.Equal(want.EnqueuedAt) {
			t.Errorf("task %d: enqueued_at %v, want %v", i, got.EnqueuedAt, want.EnqueuedAt)
		}
		got.EnqueuedAt, want.EnqueuedAt = time.Time{}, time.Time{}
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("task %d:\n got %+v\nwant %+v", i, *got, want)
		}
		if got.TaskID() != want.TaskID() || got.Queue() != want.Queue() {
			t.Errorf("task %d: id %s queue %s, want %s %s", i, got.TaskID(), got.Queue(), want.TaskID(), want.Queue())
		}
	}
}

// A sealed task opens only with a key that verifies it, and decodes to the
// same task; CheckID refuses an id that is not derived from the task.
func TestOpenSealed(t *testing.T) {
	t.Parallel()
	secret := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	keys, err := taskauth.Parse("k1:" + secret)
	if err != nil {
		t.Fatal(err)
	}
	d := sampleTasks()[0]
	d.ID = NotificationID(d.ReceiverID, d.IdempotencyKey)
	task, err := d.Task(keys)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Open(keys, task.Payload())
	if err != nil {
		t.Fatal(err)
	}
	if got.TaskID() != d.TaskID() || got.CheckID() != nil {
		t.Fatalf("sealed round trip: got %+v (check id: %v)", got, got.CheckID())
	}
	unsigned, err := d.Task(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(keys, unsigned.Payload()); !errors.Is(err, taskauth.ErrUnsigned) {
		t.Fatalf("unsigned task: err = %v, want ErrUnsigned", err)
	}
	got.IdempotencyKey = "another-order"
	if err := got.CheckID(); !errors.Is(err, ErrIDMismatch) {
		t.Fatalf("mismatched id: err = %v, want ErrIDMismatch", err)
	}
}

func TestDecodeRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, payload string }{
		{"not JSON", `{"id":`},
		{"no id", `{"receiver_id":"0b9c4a2e-aaaa-4bbb-8ccc-ddddeeeeffff","attempt":1}`},
		{"no receiver", `{"id":"4d7f6c1e-1111-4222-8333-944455556666","attempt":1}`},
		{"negative attempt", `{"id":"4d7f6c1e-1111-4222-8333-944455556666","receiver_id":"0b9c4a2e-aaaa-4bbb-8ccc-ddddeeeeffff","attempt":-1}`},
		{"bad payload", `{"id":"4d7f6c1e-1111-4222-8333-944455556666","receiver_id":"0b9c4a2e-aaaa-4bbb-8ccc-ddddeeeeffff","payload":{x},"attempt":1}`},
	} {
		if d, err := Decode([]byte(tc.payload)); err == nil {
			t.Errorf("%s: decoded %+v, want an error", tc.name, d)
		}
	}
}

// Whatever Decode accepts is a task that survives its own encoding: the
// worker re-queues decoded tasks (retries, re-drive), so a task must not
// change or become undecodable on the way round.
func FuzzDecode(f *testing.F) {
	for _, d := range sampleTasks() {
		task, err := d.Task(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(task.Payload())
		s := string(task.Payload())
		f.Add([]byte(strings.Replace(s, `"attempt":`, `"attempt":-`, 1)))
		f.Add([]byte(strings.Replace(s, `"payload":`, `"payload": `, 1)))
		f.Add([]byte(strings.Replace(s, `2026-11-22T01`, `2026-11-22T24`, 1)))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Decode(b)
		if err != nil {
			return
		}
		task, err := d.Task(nil)
		if err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", d, err)
		}
		again, err := Decode(task.Payload())
		if err != nil {
			t.Fatalf("re-encoded %q does not decode: %v", task.Payload(), err)
		}
		if again.TaskID() != d.TaskID() || !again.EnqueuedAt.Equal(d.EnqueuedAt) || again.EventType != d.EventType ||
			again.IdempotencyKey != d.IdempotencyKey || again.CallbackURL != d.CallbackURL || !jsonEqual(again.Payload, d.Payload) {
			t.Fatalf("round trip changed the task:\n got %+v\nwant %+v", again, d)
		}
	})
}

// jsonEqual compares two payloads as JSON values (encoding compacts them,
// and writes an absent one as null).
func jsonEqual(a, b []byte) bool {
	var va, vb any
	if len(a) == 0 {
		a = []byte("null")
	}
	if len(b) == 0 {
		b = []byte("null")
	}
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

// BenchmarkDecode is Decode's cost on a task with a ~300-byte payload.
func BenchmarkDecode(b *testing.B) {
	d := sampleTasks()[0]
	d.Payload = json.RawMessage(`{"trade_no":"2026112201020300001","out_trade_no":"order-1","amount":"100.00","currency":"CNY","status":"TRADE_SUCCESS","buyer":"u-1234567","paid_at":"2026-11-22T01:02:03Z","items":[{"sku":"A-1","qty":2},{"sku":"B-7","qty":1}],"memo":"the benchmark's 300-byte payload, about"}`)
	task, err := d.Task(nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(task.Payload()); err != nil {
			b.Fatal(err)
		}
	}
}
