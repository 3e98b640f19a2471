package tasks

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
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

// What Task writes, Decode reads back, through the fast path where it can.
func TestDecodeRoundTrip(t *testing.T) {
	t.Parallel()
	for i, want := range sampleTasks() {
		task, err := want.Task()
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(task.Payload())
		if err != nil {
			t.Fatalf("task %d: %v", i, err)
		}
		var ref Deliver
		if err := json.Unmarshal(task.Payload(), &ref); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*got, ref) {
			t.Errorf("task %d:\n got %+v\nwant %+v", i, *got, ref)
		}
		var fast Deliver
		// encoding/json escapes & < > and tab, which the fast path leaves
		// to it, like non-ASCII.
		if ok := decodeFast(task.Payload(), &fast); ok != (i == 0 || i == 2) {
			t.Errorf("task %d: fast path taken = %v", i, ok)
		}
	}
}

// Whenever the fast path accepts an input, it reads what encoding/json reads.
func FuzzDecode(f *testing.F) {
	for _, d := range sampleTasks() {
		task, err := d.Task()
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
		var fast Deliver
		if !decodeFast(b, &fast) {
			return
		}
		var ref Deliver
		if err := json.Unmarshal(b, &ref); err != nil {
			t.Fatalf("fast path accepted what encoding/json rejects (%v): %q", err, b)
		}
		if !reflect.DeepEqual(fast, ref) {
			t.Fatalf("fast path read %+v, encoding/json %+v, from %q", fast, ref, b)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	d := sampleTasks()[0]
	d.Payload = json.RawMessage(`{"trade_no":"2026112201020300001","out_trade_no":"order-1","amount":"100.00","currency":"CNY","status":"TRADE_SUCCESS","buyer":"u-1234567","paid_at":"2026-11-22T01:02:03Z","items":[{"sku":"A-1","qty":2},{"sku":"B-7","qty":1}],"memo":"the benchmark's 300-byte payload, about"}`)
	task, err := d.Task()
	if err != nil {
		b.Fatal(err)
	}
	payload := task.Payload()
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Decode(payload); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var d Deliver
			if err := json.Unmarshal(payload, &d); err != nil {
				b.Fatal(err)
			}
		}
	})
}
