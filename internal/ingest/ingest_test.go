package ingest_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/notifyd/notifyd/internal/ingest"
	"github.com/notifyd/notifyd/internal/netguard"
)

func nested(depth int) string {
	return strings.Repeat(`{"a":[`, depth/2) + strings.Repeat(`[`, depth%2) + `1` +
		strings.Repeat(`]`, depth%2) + strings.Repeat(`]}`, depth/2)
}

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := func() ingest.Input {
		return ingest.Input{EventType: "trade.paid", IdempotencyKey: "order-1", Payload: []byte(`{"amount":1}`)}
	}
	tests := []struct {
		name  string
		rules ingest.Rules
		edit  func(*ingest.Input)
		field string // "" when valid
	}{
		{name: "valid", edit: func(*ingest.Input) {}},
		{name: "event_type missing", edit: func(in *ingest.Input) { in.EventType = "" }, field: "event_type"},
		{name: "event_type at limit", edit: func(in *ingest.Input) { in.EventType = strings.Repeat("e", ingest.MaxEventTypeLen) }},
		{name: "event_type over limit", edit: func(in *ingest.Input) { in.EventType = strings.Repeat("e", ingest.MaxEventTypeLen+1) }, field: "event_type"},
		{name: "event_type invalid UTF-8", edit: func(in *ingest.Input) { in.EventType = "a\xffb" }, field: "event_type"},
		{name: "event_type control char", edit: func(in *ingest.Input) { in.EventType = "a\nb" }, field: "event_type"},
		{name: "event_type NUL", edit: func(in *ingest.Input) { in.EventType = "a\x00b" }, field: "event_type"},
		{name: "idempotency_key missing", edit: func(in *ingest.Input) { in.IdempotencyKey = "" }, field: "idempotency_key"},
		{name: "idempotency_key at limit", edit: func(in *ingest.Input) { in.IdempotencyKey = strings.Repeat("k", ingest.MaxIdempotencyKeyLen) }},
		{name: "idempotency_key over limit", edit: func(in *ingest.Input) { in.IdempotencyKey = strings.Repeat("k", ingest.MaxIdempotencyKeyLen+1) }, field: "idempotency_key"},
		{name: "idempotency_key multi-byte over limit in bytes", edit: func(in *ingest.Input) { in.IdempotencyKey = strings.Repeat("é", 128) }, field: "idempotency_key"},
		{name: "callback_url public", edit: func(in *ingest.Input) { in.CallbackURL = "https://hooks.example.com/x" }},
		{name: "callback_url loopback", edit: func(in *ingest.Input) { in.CallbackURL = "http://0x7f000001/" }, field: "callback_url"},
		{name: "callback_url loopback allowed by policy", rules: ingest.Rules{Targets: netguard.Policy{AllowPrivate: true}},
			edit: func(in *ingest.Input) { in.CallbackURL = "http://127.0.0.1:8080/" }},
		{name: "payload missing", edit: func(in *ingest.Input) { in.Payload = nil }, field: "payload"},
		{name: "payload not JSON", edit: func(in *ingest.Input) { in.Payload = []byte(`{"a":`) }, field: "payload"},
		{name: "payload too large", rules: ingest.Rules{MaxPayload: 10}, edit: func(in *ingest.Input) { in.Payload = []byte(`"01234567890"`) }, field: "payload"},
		{name: "payload scalar", edit: func(in *ingest.Input) { in.Payload = []byte(`42`) }},
		{name: "payload at default depth", edit: func(in *ingest.Input) { in.Payload = []byte(nested(ingest.DefaultMaxDepth)) }},
		{name: "payload over default depth", edit: func(in *ingest.Input) { in.Payload = []byte(nested(ingest.DefaultMaxDepth + 1)) }, field: "payload"},
		{name: "payload far over default depth", edit: func(in *ingest.Input) { in.Payload = []byte(nested(9000)) }, field: "payload"},
		{name: "payload over configured depth", rules: ingest.Rules{MaxDepth: 3}, edit: func(in *ingest.Input) { in.Payload = []byte(`[[[[1]]]]`) }, field: "payload"},
		{name: "brackets inside strings do not count", rules: ingest.Rules{MaxDepth: 2},
			edit: func(in *ingest.Input) { in.Payload = []byte(`{"a":["[[[{{{\"[[["]}`) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := ok()
			tc.edit(&in)
			err := tc.rules.Validate(&in)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var fe *ingest.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !errors.Is(err, ingest.ErrInvalid) {
				t.Fatalf("got %v, want a field error for %s", err, tc.field)
			}
		})
	}
}

func TestDepth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int
	}{
		{`1`, 0},
		{`"[{"`, 0},
		{`{}`, 1},
		{`[1,2,{"a":3}]`, 2},
		{`[[],[[]]]`, 3},
		{`{"a\"[":[1]}`, 2},
		{`"\\"`, 0},
		{`["\\",[]]`, 2},
		{`]]]][`, 1}, // not JSON; the scanner must still not go negative
		{nested(64), 64},
	}
	for _, tc := range tests {
		if got := ingest.Depth([]byte(tc.in)); got != tc.want {
			t.Errorf("Depth(%s) = %d, want %d", tc.in, got, tc.want)
		}
		// Fed in one-byte pieces, the scanner must agree.
		var s ingest.DepthScanner
		got := 0
		for i := range len(tc.in) {
			got = s.Write([]byte{tc.in[i]})
		}
		if got != tc.want {
			t.Errorf("byte-wise Depth(%s) = %d, want %d", tc.in, got, tc.want)
		}
	}
}
