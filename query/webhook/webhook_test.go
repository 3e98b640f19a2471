package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/signing"
	"github.com/notifyd/notifyd/query/webhook"
)

func newSecret(t *testing.T) (string, []byte) {
	t.Helper()
	s, err := signing.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	key, err := signing.ParseSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	return s, key
}

const msgID = "0b7c6b0e-64a4-5f6f-9a53-8d1f3f0a7c11"

func envelopeBody(t *testing.T) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"id": msgID, "type": "trade.paid", "receiver_id": "6e0f3a52-6c6f-4b7a-9d55-5a1b2f1f0a01",
		"idempotency_key": "order-7", "created_at": "2026-03-01T10:00:00.123456Z", "data": map[string]any{"amount": 42},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signedRequest builds a callback exactly as the worker sends it.
func signedRequest(id string, ts time.Time, body []byte, attempt string, keys ...[]byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/notifyd", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set(signing.HeaderID, id)
	r.Header.Set(signing.HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	r.Header.Set(signing.HeaderSignature, signing.NewSigner(keys...).Header(id, ts, body))
	if attempt != "" {
		r.Header.Set(webhook.HeaderAttempt, attempt)
	}
	return r
}

func TestVerifyAcceptsSignedCallback(t *testing.T) {
	t.Parallel()
	secret, key := newSecret(t)
	v, err := webhook.NewVerifier(secret)
	if err != nil {
		t.Fatal(err)
	}
	body := envelopeBody(t)
	r := signedRequest(msgID, time.Now(), body, "3", key)
	evt, err := v.Verify(r)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := webhook.Event{ID: msgID, Type: "trade.paid", ReceiverID: "6e0f3a52-6c6f-4b7a-9d55-5a1b2f1f0a01",
		IdempotencyKey: "order-7", Attempt: 3,
		CreatedAt: time.Date(2026, 3, 1, 10, 0, 0, 123456000, time.UTC)}
	if evt.ID != want.ID || evt.Type != want.Type || evt.ReceiverID != want.ReceiverID ||
		evt.IdempotencyKey != want.IdempotencyKey || evt.Attempt != want.Attempt || !evt.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("event = %+v, want %+v", evt, want)
	}
	if string(evt.Data) != `{"amount":42}` {
		t.Errorf("data = %s", evt.Data)
	}
	// The body stays readable for callers that want the raw bytes.
	again, _ := io.ReadAll(r.Body)
	if !bytes.Equal(again, body) {
		t.Errorf("r.Body after Verify = %q, want the original body", again)
	}
}

func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	secret, key := newSecret(t)
	_, otherKey := newSecret(t)
	body := envelopeBody(t)
	now := time.Now()

	tests := []struct {
		name string
		req  func() *http.Request
		opts []webhook.Option
		want error
	}{
		{"tampered body", func() *http.Request {
			r := signedRequest(msgID, now, body, "1", key)
			r.Body = io.NopCloser(bytes.NewReader(bytes.Replace(body, []byte("42"), []byte("4200"), 1)))
			return r
		}, nil, webhook.ErrInvalidSignature},
		{"tampered id", func() *http.Request {
			r := signedRequest(msgID, now, body, "1", key)
			r.Header.Set(signing.HeaderID, "another-id")
			return r
		}, nil, webhook.ErrInvalidSignature},
		{"tampered timestamp", func() *http.Request {
			r := signedRequest(msgID, now, body, "1", key)
			r.Header.Set(signing.HeaderTimestamp, strconv.FormatInt(now.Unix()+1, 10))
			return r
		}, nil, webhook.ErrInvalidSignature},
		{"wrong secret", func() *http.Request { return signedRequest(msgID, now, body, "1", otherKey) }, nil, webhook.ErrInvalidSignature},
		{"stale", func() *http.Request { return signedRequest(msgID, now.Add(-6*time.Minute), body, "1", key) }, nil, webhook.ErrTimestampOutOfRange},
		{"from the future", func() *http.Request { return signedRequest(msgID, now.Add(6*time.Minute), body, "1", key) }, nil, webhook.ErrTimestampOutOfRange},
		{"stale beyond a custom tolerance", func() *http.Request { return signedRequest(msgID, now.Add(-2*time.Minute), body, "1", key) },
			[]webhook.Option{webhook.WithTolerance(time.Minute)}, webhook.ErrTimestampOutOfRange},
		{"no signature header", func() *http.Request {
			r := signedRequest(msgID, now, body, "1", key)
			r.Header.Del(signing.HeaderSignature)
			return r
		}, nil, webhook.ErrMissingHeaders},
		{"timestamp not a number", func() *http.Request {
			r := signedRequest(msgID, now, body, "1", key)
			r.Header.Set(signing.HeaderTimestamp, "yesterday")
			return r
		}, nil, webhook.ErrMissingHeaders},
		{"body over the limit", func() *http.Request { return signedRequest(msgID, now, body, "1", key) },
			[]webhook.Option{webhook.WithMaxBodySize(int64(len(body) - 1))}, webhook.ErrBodyTooLarge},
		{"signed but not JSON", func() *http.Request { return signedRequest(msgID, now, []byte("paid=1"), "1", key) }, nil, webhook.ErrInvalidEnvelope},
		{"signed but no id", func() *http.Request {
			return signedRequest(msgID, now, []byte(`{"type":"trade.paid","data":{}}`), "1", key)
		}, nil, webhook.ErrInvalidEnvelope},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, err := webhook.NewVerifier(secret, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			evt, err := v.Verify(tt.req())
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %+v, %v; want %v", evt, err, tt.want)
			}
			if evt != nil {
				t.Errorf("event returned with an error: %+v", evt)
			}
		})
	}
}

func TestVerifyToleranceAndBodyLimitBoundaries(t *testing.T) {
	t.Parallel()
	secret, key := newSecret(t)
	body := envelopeBody(t)
	v, err := webhook.NewVerifier(secret, webhook.WithTolerance(15*time.Minute), webhook.WithMaxBodySize(int64(len(body))))
	if err != nil {
		t.Fatal(err)
	}
	// Ten minutes old passes a 15-minute tolerance; a body of exactly the limit passes.
	evt, err := v.Verify(signedRequest(msgID, time.Now().Add(-10*time.Minute), body, "", key))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if evt.Attempt != 0 {
		t.Errorf("attempt without header = %d, want 0", evt.Attempt)
	}
}

func TestVerifySecretRotation(t *testing.T) {
	t.Parallel()
	oldSecret, oldKey := newSecret(t)
	newSecretText, newKey := newSecret(t)
	body := envelopeBody(t)
	now := time.Now()

	onlyNew, err := webhook.NewVerifier(newSecretText)
	if err != nil {
		t.Fatal(err)
	}
	onlyOld, err := webhook.NewVerifier(oldSecret)
	if err != nil {
		t.Fatal(err)
	}
	both, err := webhook.NewVerifier(newSecretText, webhook.WithSecrets(oldSecret))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		v       *webhook.Verifier
		keys    [][]byte
		wantErr error
	}{
		// During the grace period notifyd signs with both keys.
		{"grace period, receiver on new secret", onlyNew, [][]byte{newKey, oldKey}, nil},
		{"grace period, receiver still on old secret", onlyOld, [][]byte{newKey, oldKey}, nil},
		// After the grace period only the new key signs.
		{"after grace, receiver lists both", both, [][]byte{newKey}, nil},
		{"after grace, receiver still on old secret", onlyOld, [][]byte{newKey}, webhook.ErrInvalidSignature},
		// A receiver that switched early, before notifyd rotated.
		{"before rotation, receiver lists both", both, [][]byte{oldKey}, nil},
		{"before rotation, receiver on new only", onlyNew, [][]byte{oldKey}, webhook.ErrInvalidSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := tt.v.Verify(signedRequest(msgID, now, body, "1", tt.keys...))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestNewVerifierRejectsBadSecrets(t *testing.T) {
	t.Parallel()
	good, _ := newSecret(t)
	tests := []struct {
		name   string
		secret string
		opts   []webhook.Option
	}{
		{"not base64", "whsec_not*base64", nil},
		{"too short", "whsec_" + "c2hvcnQ=", nil},
		{"bad extra secret", good, []webhook.Option{webhook.WithSecrets("whsec_???")}},
		{"zero tolerance", good, []webhook.Option{webhook.WithTolerance(0)}},
		{"zero body size", good, []webhook.Option{webhook.WithMaxBodySize(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if v, err := webhook.NewVerifier(tt.secret, tt.opts...); err == nil {
				t.Fatalf("NewVerifier = %v, want an error", v)
			}
		})
	}
	if _, err := webhook.NewVerifier("whsec_x"); !errors.Is(err, signing.ErrInvalidSecret) {
		t.Errorf("error %v does not match signing.ErrInvalidSecret", err)
	}
}

func TestHandlerAnswers(t *testing.T) {
	t.Parallel()
	secret, key := newSecret(t)
	_, otherKey := newSecret(t)
	v, err := webhook.NewVerifier(secret, webhook.WithMaxBodySize(4096))
	if err != nil {
		t.Fatal(err)
	}
	body := envelopeBody(t)
	now := time.Now()
	failing := errors.New("database down")

	tests := []struct {
		name       string
		req        *http.Request
		fnErr      error
		opts       []webhook.HandlerOption
		wantCode   int
		wantBody   string
		wantCalled bool
	}{
		{"accepted", signedRequest(msgID, now, body, "1", key), nil, nil, 204, "", true},
		{"accepted with success body", signedRequest(msgID, now, body, "1", key), nil,
			[]webhook.HandlerOption{webhook.WithSuccessBody("success")}, 200, "success", true},
		{"handler error", signedRequest(msgID, now, body, "1", key), failing, nil, 500, "webhook handler failed\n", true},
		{"bad signature", signedRequest(msgID, now, body, "1", otherKey), nil, nil, 400, "", false},
		{"stale", signedRequest(msgID, now.Add(-time.Hour), body, "1", key), nil, nil, 400, "", false},
		{"too large", signedRequest(msgID, now, bytes.Repeat([]byte(" "), 5000), "1", key), nil, nil, 413, "", false},
		{"GET", httptest.NewRequest(http.MethodGet, "/notifyd", nil), nil, nil, 405, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var called *webhook.Event
			var logged []error
			opts := append([]webhook.HandlerOption{webhook.WithErrorLog(func(_ *http.Request, err error) { logged = append(logged, err) })}, tt.opts...)
			h := webhook.Handler(v, func(_ context.Context, e *webhook.Event) error {
				called = e
				return tt.fnErr
			}, opts...)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, tt.req)
			if w.Code != tt.wantCode {
				t.Errorf("status = %d, want %d (body %q)", w.Code, tt.wantCode, w.Body.String())
			}
			if tt.wantBody != "" && w.Body.String() != tt.wantBody {
				t.Errorf("body = %q, want %q", w.Body.String(), tt.wantBody)
			}
			if (called != nil) != tt.wantCalled {
				t.Errorf("handler called = %v, want %v", called != nil, tt.wantCalled)
			}
			if called != nil && called.ID != msgID {
				t.Errorf("event id = %q", called.ID)
			}
			wantLogged := tt.wantCode >= 400 && tt.wantCode != 405
			if (len(logged) > 0) != wantLogged {
				t.Errorf("logged %v, want logging %v", logged, wantLogged)
			}
			if tt.fnErr != nil && (len(logged) != 1 || !errors.Is(logged[0], tt.fnErr) || strings.Contains(w.Body.String(), tt.fnErr.Error())) {
				t.Errorf("handler error: logged %v, answered %q", logged, w.Body.String())
			}
		})
	}
}
