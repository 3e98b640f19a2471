package ingest_test

import (
	"encoding/json"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/notifyd/notifyd/internal/ingest"
	"github.com/notifyd/notifyd/internal/netguard"
)

// FuzzIngestValidate checks that Validate never panics, and that whatever it
// accepts is safe to store and forward: required fields present, within
// their limits, valid UTF-8 without control characters, a callback URL the
// policy accepts, and a payload that is valid JSON within the size and depth
// limits. It also checks that the streaming depth scanner agrees with the
// one-shot one however the text is split.
func FuzzIngestValidate(f *testing.F) {
	f.Add("trade.paid", "order-1", "", []byte(`{"amount":100}`), uint16(3))
	f.Add("trade.paid", "order-2", "https://hooks.example.com/cb?x=1", []byte(`[1,"two",{"3":null}]`), uint16(0))
	f.Add("a\x00b", "k", "http://127.0.0.1/", []byte(`{`), uint16(1))
	f.Add("é", "\xff", "http://0x7f000001/", []byte(`"[[[\"]]"`), uint16(5))
	f.Add("t", "k", "", []byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`), uint16(40))
	rules := ingest.Rules{MaxPayload: 4 << 10}
	var policy netguard.Policy
	f.Fuzz(func(t *testing.T, eventType, key, callbackURL string, payload []byte, split uint16) {
		in := ingest.Input{EventType: eventType, IdempotencyKey: key, CallbackURL: callbackURL, Payload: payload}
		depth := ingest.Depth(payload)
		if len(payload) > 0 {
			cut := int(split) % (len(payload) + 1)
			var s ingest.DepthScanner
			s.Write(payload[:cut])
			if got := s.Write(payload[cut:]); got != depth {
				t.Fatalf("split at %d: depth %d, one-shot %d", cut, got, depth)
			}
		}
		if err := rules.Validate(&in); err != nil {
			return
		}
		checkText(t, "event_type", eventType, ingest.MaxEventTypeLen)
		checkText(t, "idempotency_key", key, ingest.MaxIdempotencyKeyLen)
		if callbackURL != "" {
			if _, err := policy.ValidateURL(callbackURL); err != nil {
				t.Fatalf("accepted callback_url %q that the policy refuses: %v", callbackURL, err)
			}
		}
		if len(payload) == 0 || len(payload) > rules.MaxPayload {
			t.Fatalf("accepted a payload of %d bytes", len(payload))
		}
		if !json.Valid(payload) {
			t.Fatalf("accepted invalid JSON %q", payload)
		}
		if depth > ingest.DefaultMaxDepth {
			t.Fatalf("accepted a payload nested %d deep", depth)
		}
	})
}

func checkText(t *testing.T, field, s string, max int) {
	t.Helper()
	if s == "" || len(s) > max || !utf8.ValidString(s) {
		t.Fatalf("accepted %s %q", field, s)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			t.Fatalf("accepted %s %q with a control character", field, s)
		}
	}
}
