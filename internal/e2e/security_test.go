package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/notifyd/notifyd/cmd/notifyd/notifydtest"
	"github.com/notifyd/notifyd/internal/netguard"
	"github.com/notifyd/notifyd/internal/signing"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/testenv"
	"github.com/notifyd/notifyd/query"
	"github.com/notifyd/notifyd/worker"
)

func withLogger(l *slog.Logger) stackOption {
	return func(w *worker.Config, q *query.Config) { w.Logger, q.Logger = l, l }
}

type rotated struct {
	SigningSecret string    `json:"signing_secret"`
	PreviousUntil time.Time `json:"previous_secret_expires_at"`
}

func (s *stack) rotate(receiverID, grace string) rotated {
	s.t.Helper()
	var out rotated
	code, raw := s.call("POST", "/v1/receivers/"+receiverID+"/rotate-secret", adminToken, map[string]any{"grace": grace}, &out)
	if code != http.StatusOK || !strings.HasPrefix(out.SigningSecret, signing.SecretPrefix) {
		s.t.Fatalf("rotate secret: %d %s", code, raw)
	}
	return out
}

// hitFor returns the request the receiver got for notification id.
func hitFor(t *testing.T, rs *receiverServer, id string) hit {
	t.Helper()
	for _, h := range rs.Hits() {
		if h.header.Get(signing.HeaderID) == id {
			return h
		}
	}
	t.Fatalf("receiver got no request for %s", id)
	return hit{}
}

// TestLogsNeverContainSecrets runs receiver creation, secret rotation, API
// key use and a delivery that fails once, with the API's and the worker's
// loggers at debug level, and checks that no secret or token reached them.
func TestLogsNeverContainSecrets(t *testing.T) {
	t.Parallel()
	var logs testenv.SyncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := newStack(t, withLogger(logger))
	rs := newReceiverServer(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	r := s.receiver(rs.URL, nil)
	rot := s.rotate(r.ID, "1h")
	if code, raw := s.call("GET", "/v1/receivers/"+r.ID, r.APIKey, nil, nil); code != http.StatusOK {
		t.Fatalf("receiver's own API key: %d %s", code, raw)
	}
	if code, _ := s.call("GET", "/v1/receivers/"+r.ID, r.APIKey+"x", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("wrong API key: %d", code)
	}
	// Bodies that carry secrets in error paths: an unknown field and a
	// malformed value, both echoed in validation messages if anything is.
	s.call("PATCH", "/v1/receivers/"+r.ID, adminToken, map[string]any{"signing_secret": rot.SigningSecret}, nil)
	s.call("POST", "/v1/receivers/"+r.ID+"/rotate-secret", adminToken, map[string]any{"grace": r.APIKey}, nil)

	id := s.send(r.ID, "order-secrets", map[string]any{"amount": 1})
	s.waitStatus(id, store.StatusDelivered, 15*time.Second)

	out := logs.String()
	// The capture must have worked, or the test proves nothing.
	for _, want := range []string{"http request", "delivery attempt failed", "rotate-secret"} {
		if !strings.Contains(out, want) {
			t.Fatalf("logs lack %q; captured:\n%s", want, out)
		}
	}
	secrets := map[string]string{
		"API key":                      r.APIKey,
		"signing secret":               r.SigningSecret,
		"rotated signing secret":       rot.SigningSecret,
		"signing secret, bare base64":  strings.TrimPrefix(r.SigningSecret, signing.SecretPrefix),
		"rotated secret, bare base64":  strings.TrimPrefix(rot.SigningSecret, signing.SecretPrefix),
		"API key, without its prefix":  strings.TrimPrefix(r.APIKey, query.APIKeyPrefix),
		"admin token":                  adminToken,
		"producer token":               producerToken,
		"signing secret prefix":        signing.SecretPrefix,
		"API key prefix (any key)":     query.APIKeyPrefix,
		"webhook signature of the run": hitFor(t, rs, id).header.Get(signing.HeaderSignature),
	}
	for what, secret := range secrets {
		if secret == "" {
			t.Fatalf("%s is empty", what)
		}
		if strings.Contains(out, secret) {
			t.Errorf("the logs contain the %s", what)
		}
	}
}

// TestAPIKeyStoredHashed checks that the database holds only the SHA-256 of
// a receiver's API key: neither the key nor its random part appears in the
// receiver's row, and the key still authenticates.
func TestAPIKeyStoredHashed(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	r := s.receiver("https://hooks.example.com/cb", nil)
	var row string
	var hash []byte
	err := s.store.Pool().QueryRow(context.Background(),
		`SELECT rc::text || k::text, k.key_hash FROM receivers rc JOIN receiver_api_keys k ON k.receiver_id = rc.id
		 WHERE rc.id = $1`, r.ID).Scan(&row, &hash)
	if err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256([]byte(r.APIKey)); !bytes.Equal(hash, want[:]) {
		t.Errorf("key_hash is %x, want the SHA-256 of the key", hash)
	}
	if strings.Contains(row, r.APIKey) || strings.Contains(row, strings.TrimPrefix(r.APIKey, query.APIKeyPrefix)) {
		t.Errorf("the receiver's rows hold the API key in clear: %s", row)
	}
	if code, raw := s.call("GET", "/v1/receivers/"+r.ID, r.APIKey, nil, nil); code != http.StatusOK {
		t.Fatalf("the key does not authenticate: %d %s", code, raw)
	}
}

// TestSecretRotationEndToEnd rotates a receiver's secret with a grace
// period: deliveries during the grace period verify with either secret in
// the official Standard Webhooks library, deliveries after it only with the
// new one. A rotation without grace drops the old secret at once.
func TestSecretRotationEndToEnd(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	rs := newReceiverServer(t, statusResponder(200))
	verify := func(secret string, h hit) error {
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		return wh.Verify(h.body, h.header)
	}

	withGrace := s.receiver(rs.URL, nil)
	oldSecret := withGrace.SigningSecret
	const grace = 4 * time.Second
	rot := s.rotate(withGrace.ID, grace.String())
	if rot.SigningSecret == oldSecret {
		t.Fatal("rotation returned the old secret")
	}
	if d := time.Until(rot.PreviousUntil); d <= 0 || d > grace+time.Second {
		t.Fatalf("previous_secret_expires_at is %s from now, want about %s", d, grace)
	}

	during := s.send(withGrace.ID, "during-grace", map[string]any{"n": 1})
	s.waitStatus(during, store.StatusDelivered, 10*time.Second)
	h := hitFor(t, rs, during)
	ts, _ := strconv.ParseInt(h.header.Get(signing.HeaderTimestamp), 10, 64)
	if !time.Unix(ts, 0).Before(rot.PreviousUntil) {
		t.Fatalf("delivery came after the grace period; the test machine is too slow to say anything")
	}
	if n := len(strings.Fields(h.header.Get(signing.HeaderSignature))); n != 2 {
		t.Errorf("during grace: %d signatures, want 2 (new and old secret)", n)
	}
	if err := verify(oldSecret, h); err != nil {
		t.Errorf("during grace: the old secret does not verify: %v", err)
	}
	if err := verify(rot.SigningSecret, h); err != nil {
		t.Errorf("during grace: the new secret does not verify: %v", err)
	}

	time.Sleep(time.Until(rot.PreviousUntil) + 300*time.Millisecond)
	after := s.send(withGrace.ID, "after-grace", map[string]any{"n": 2})
	s.waitStatus(after, store.StatusDelivered, 10*time.Second)
	h = hitFor(t, rs, after)
	if n := len(strings.Fields(h.header.Get(signing.HeaderSignature))); n != 1 {
		t.Errorf("after grace: %d signatures, want 1", n)
	}
	if err := verify(rot.SigningSecret, h); err != nil {
		t.Errorf("after grace: the new secret does not verify: %v", err)
	}
	if err := verify(oldSecret, h); err == nil {
		t.Errorf("after grace: the old secret still verifies")
	}

	noGrace := s.receiver(rs.URL, nil)
	rot0 := s.rotate(noGrace.ID, "0s")
	id := s.send(noGrace.ID, "no-grace", map[string]any{"n": 3})
	s.waitStatus(id, store.StatusDelivered, 10*time.Second)
	h = hitFor(t, rs, id)
	if err := verify(rot0.SigningSecret, h); err != nil {
		t.Errorf("grace 0s: the new secret does not verify: %v", err)
	}
	if err := verify(noGrace.SigningSecret, h); err == nil {
		t.Errorf("grace 0s: the old secret still verifies")
	}
}

// TestWorkerBlocksPrivateTargets registers callback URLs the API accepts
// (its policy allows loopback here) but the worker's production policy
// refuses: every attempt is recorded as blocked and the receiver, listening
// on loopback, never hears a thing.
func TestWorkerBlocksPrivateTargets(t *testing.T) {
	t.Parallel()
	s := newStack(t, func(w *worker.Config, _ *query.Config) { w.Targets = netguard.Policy{} })
	rs := newReceiverServer(t, statusResponder(200))
	port := strconv.Itoa(rs.Listener.Addr().(*net.TCPAddr).Port)

	urls := []string{
		"http://127.0.0.1:" + port + "/cb",
		"http://localhost:" + port + "/cb",
		"http://[::1]:" + port + "/cb",
		"http://0x7f000001:" + port + "/cb",
		"http://2130706433:" + port + "/cb",
		"http://169.254.169.254/latest/meta-data/",
	}
	// One receiver per URL: the worker's per-receiver circuit breaker would
	// otherwise defer a receiver's later notifications after a run of
	// blocked attempts, which is correct but slows the test down.
	ids := make([]string, len(urls))
	for i, u := range urls {
		r := s.receiver(rs.URL, nil)
		var out struct{ ID string }
		code, raw := s.call("POST", "/v1/notifications", producerToken, map[string]any{
			"receiver_id": r.ID, "event_type": "trade.paid", "idempotency_key": fmt.Sprintf("blocked-%d", i),
			"callback_url": u, "payload": map[string]any{"n": i},
		}, &out)
		if code != http.StatusAccepted {
			t.Fatalf("ingest %s: %d %s", u, code, raw)
		}
		ids[i] = out.ID
	}
	// The receiver's own URL (loopback too) is blocked as well.
	ids = append(ids, s.send(s.receiver(rs.URL, nil).ID, "blocked-default", map[string]any{"n": -1}))
	urls = append(urls, rs.URL+" (receiver default)")

	for i, id := range ids {
		n := s.waitStatus(id, store.StatusFailed, 20*time.Second)
		as := s.attempts(id)
		if len(as) != n.Attempts || len(as) == 0 {
			t.Fatalf("%s: %d attempts on record, notification says %d", urls[i], len(as), n.Attempts)
		}
		for _, a := range as {
			if a.Outcome != store.OutcomeBlocked || a.StatusCode != 0 || a.ResponseBody != "" {
				t.Errorf("%s: attempt %+v, want outcome blocked without an answer", urls[i], a)
			}
		}
	}
	if hits := rs.Hits(); len(hits) != 0 {
		t.Fatalf("the loopback receiver got %d requests, want none", len(hits))
	}
}

// TestRedirectIsNotFollowed: a receiver answering 302 to a URL that is
// itself allowed has failed the attempt, and the redirect target is never
// contacted.
func TestRedirectIsNotFollowed(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	elsewhere := newReceiverServer(t, statusResponder(200))
	redirector := newReceiverServer(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/steal", http.StatusFound)
	})
	r := s.receiver(redirector.URL, nil)
	id := s.send(r.ID, "redirected", map[string]any{"n": 1})
	n := s.waitStatus(id, store.StatusFailed, 20*time.Second)
	as := s.attempts(id)
	if len(as) != n.Attempts || len(as) != notifydtest.FastRetry().MaxAttempts {
		t.Fatalf("%d attempts on record, want %d", len(as), notifydtest.FastRetry().MaxAttempts)
	}
	for _, a := range as {
		if a.Outcome != store.OutcomeFailure || a.StatusCode != http.StatusFound {
			t.Errorf("attempt %+v, want a failure with status 302", a)
		}
	}
	if got := len(redirector.Hits()); got != len(as) {
		t.Errorf("redirector got %d requests, want %d", got, len(as))
	}
	if got := len(elsewhere.Hits()); got != 0 {
		t.Fatalf("the redirect target got %d requests, want none", got)
	}
}
