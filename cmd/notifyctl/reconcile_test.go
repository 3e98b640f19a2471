package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/notifyd/notifyd/cmd/notifyd/notifydtest"
	"github.com/notifyd/notifyd/internal/apitest"
	"github.com/notifyd/notifyd/query/client"
)

// localHandler is the merchant's callback handler, to which reconcile hands
// notifications: it verifies each request with the official Standard
// Webhooks library and the receiver's signing secret, records the
// envelope's id and answers 200, except the failAt-th request, answered
// 500, and the holdAt-th, held until the test ends (the process making it
// is stopped meanwhile) and then answered 503. Both are 1-based; 0 is
// never.
type localHandler struct {
	*httptest.Server
	mu      sync.Mutex
	got     []string // ids in arrival order, failed and held requests included
	failAt  int
	holdAt  int
	blocked chan struct{} // closed when the holdAt-th request arrives
	release chan struct{}
}

func newLocalHandler(t *testing.T, r apitest.Receiver, failAt int) *localHandler {
	return startLocalHandler(t, r, failAt, 0)
}

// newBlockingHandler returns a handler that holds the block-th request.
func newBlockingHandler(t *testing.T, r apitest.Receiver, block int) *localHandler {
	return startLocalHandler(t, r, 0, block)
}

func startLocalHandler(t *testing.T, rcv apitest.Receiver, failAt, holdAt int) *localHandler {
	wh, err := standardwebhooks.NewWebhook(rcv.SigningSecret)
	if err != nil {
		t.Fatal(err)
	}
	h := &localHandler{failAt: failAt, holdAt: holdAt, blocked: make(chan struct{}), release: make(chan struct{})}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e struct {
			ID         string `json:"id"`
			Type       string `json:"type"`
			ReceiverID string `json:"receiver_id"`
		}
		body, _ := io.ReadAll(r.Body)
		if err := wh.Verify(body, r.Header); err != nil {
			t.Errorf("official Standard Webhooks library rejects reconcile's request: %v", err)
		}
		if err := json.Unmarshal(body, &e); err != nil || e.ID == "" || r.Header.Get("webhook-id") != e.ID || e.Type == "" ||
			e.ReceiverID != rcv.ID || r.Header.Get("Notifyd-Reconcile") != "1" {
			t.Errorf("handler got %s %q (%v)", r.Header, body, err)
		}
		h.mu.Lock()
		h.got = append(h.got, e.ID)
		nth := len(h.got)
		h.mu.Unlock()
		switch nth {
		case h.failAt:
			http.Error(w, "ledger unavailable", http.StatusInternalServerError)
		case h.holdAt:
			close(h.blocked)
			select {
			case <-h.release:
			case <-r.Context().Done():
			}
			http.Error(w, "gone", http.StatusServiceUnavailable)
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	t.Cleanup(func() {
		close(h.release)
		h.Close()
	})
	return h
}

func (h *localHandler) ids() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.got)
}

// reconcileSetup starts notifyd with one receiver (whose callback answers
// 200), sends it n notifications and returns their ids in creation order
// and a checkpoint path in a fresh directory.
func reconcileSetup(t *testing.T, n int) (*notifydtest.Stack, apitest.Receiver, []string, string) {
	t.Helper()
	s := notifydtest.Start(t)
	cb := apitest.NewCallbackServer(t, http.StatusOK)
	r := s.CreateReceiver(cb.URL, nil)
	return s, r, sendMany(t, s, r.ID, "order", n), filepath.Join(t.TempDir(), "notifyd.ckpt")
}

// sendMany sends n notifications through the API and returns their ids in
// creation order.
func sendMany(t *testing.T, s *notifydtest.Stack, receiverID, prefix string, n int) []string {
	t.Helper()
	c := client.New(s.URL, apitest.ProducerToken)
	ids := make([]string, n)
	for i := range n {
		a, err := c.Send(context.Background(), client.NewNotification{
			ReceiverID: receiverID, EventType: "trade.paid", IdempotencyKey: fmt.Sprintf("%s-%03d", prefix, i),
			Payload: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)),
		})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = a.ID
	}
	return ids
}

// reconcile runs notifyctl reconcile with r's API key and, for a handler,
// r's signing secret.
func reconcile(t *testing.T, s *notifydtest.Stack, r apitest.Receiver, ckpt string, extra ...string) (int, string, string) {
	t.Helper()
	args := append([]string{"--url", s.URL, "--token", r.APIKey, "reconcile", "--checkpoint", ckpt}, extra...)
	if slices.Contains(extra, "--handler-url") {
		args = append(args, "--signing-secret-file", secretFile(t, r))
	}
	return ctl(t, args...)
}

// secretFile writes r's signing secret to a file only the test reads.
func secretFile(t *testing.T, r apitest.Receiver) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "signing-secret")
	if err := os.WriteFile(path, []byte(r.SigningSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func readCheckpoint(t *testing.T, path string) *checkpoint {
	t.Helper()
	c, exists, err := loadCheckpoint(path)
	if err != nil || !exists {
		t.Fatalf("checkpoint %s: exists %v, %v", path, exists, err)
	}
	return c
}

func counts(ids []string) map[string]int {
	m := map[string]int{}
	for _, id := range ids {
		m[id]++
	}
	return m
}

func TestReconcileAfterReceiverOutage(t *testing.T) {
	t.Parallel()
	s := notifydtest.Start(t)
	// The receiver's callback endpoint is down for the whole life of these
	// notifications: both attempts fail and they end failed.
	down := apitest.NewCallbackServer(t, http.StatusServiceUnavailable)
	r := s.CreateReceiver(down.URL, map[string]any{"retry": map[string]any{"max_attempts": 2, "intervals": []string{"1s"}}})
	ids := sendMany(t, s, r.ID, "order", 23)
	s.WaitStatus(20*time.Second, client.StatusFailed, ids...)

	h := newLocalHandler(t, r, 0)
	ckpt := filepath.Join(t.TempDir(), "notifyd.ckpt")
	// A small page size makes the run cross several pages.
	code, out, errOut := reconcile(t, s, r, ckpt, "--handler-url", h.URL, "--page-size", "5", "--progress-every", "10")
	if code != 0 {
		t.Fatalf("reconcile: exit %d\n%s", code, errOut)
	}
	if out != "" {
		t.Errorf("stdout with --handler-url: %q", out)
	}
	if got := h.ids(); !slices.Equal(got, ids) {
		t.Fatalf("handler got %d notifications %v,\nwant each of %d once in creation order %v", len(got), got, len(ids), ids)
	}
	for _, want := range []string{"reconcile: 10 handled", "reconcile: 20 handled", "reconcile: done: 23 handled, 0 skipped"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	ck := readCheckpoint(t, ckpt)
	if ck.ID != ids[len(ids)-1] || ck.ReceiverID != r.ID || len(ck.Seen) != len(ids) {
		t.Errorf("checkpoint at %s (receiver %s) with %d seen; want at %s with %d", ck.ID, ck.ReceiverID, len(ck.Seen), ids[len(ids)-1], len(ids))
	}

	// Twice: nothing new is handled.
	code, _, errOut = reconcile(t, s, r, ckpt, "--handler-url", h.URL, "--page-size", "5")
	if code != 0 || len(h.ids()) != len(ids) {
		t.Fatalf("second run: exit %d, handler now has %d requests\n%s", code, len(h.ids()), errOut)
	}
	if !strings.Contains(errOut, "reconcile: done: 0 handled, 23 skipped (already handled)") {
		t.Errorf("second run summary:\n%s", errOut)
	}

	// New notifications after the run are the only ones the next run hands over.
	down.SetStatus(http.StatusOK)
	more := sendMany(t, s, r.ID, "later", 3)
	code, _, errOut = reconcile(t, s, r, ckpt, "--handler-url", h.URL)
	if got := h.ids(); code != 0 || !slices.Equal(got[len(ids):], more) {
		t.Fatalf("third run: exit %d, handler got %v, want %v\n%s", code, got[len(ids):], more, errOut)
	}
	for id, n := range counts(h.ids()) {
		if n != 1 {
			t.Errorf("%s handled %d times", id, n)
		}
	}
}

func TestReconcileStopsAtFailingHandlerAndResumes(t *testing.T) {
	t.Parallel()
	s, r, ids, ckpt := reconcileSetup(t, 12)

	// The handler fails at the 5th notification: the run stops there, as a
	// kill would, with the checkpoint just before it.
	const k = 5
	failing := newLocalHandler(t, r, k)
	code, _, errOut := reconcile(t, s, r, ckpt, "--handler-url", failing.URL, "--page-size", "3")
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, errOut)
	}
	for _, want := range []string{"handler answered 500 Internal Server Error for notification " + ids[k-1], "ledger unavailable",
		"reconcile: stopped: 4 handled"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if got := failing.ids(); !slices.Equal(got, ids[:k]) {
		t.Fatalf("failing handler got %v, want %v", got, ids[:k])
	}
	ck := readCheckpoint(t, ckpt)
	if ck.ID != ids[k-2] {
		t.Errorf("checkpoint at %s, want %s (the last handled, before the failed one)", ck.ID, ids[k-2])
	}
	if _, ok := ck.Seen[ids[k-1]]; ok || len(ck.Seen) != k-1 {
		t.Errorf("checkpoint seen = %v, want the %d handled ids", ck.Seen, k-1)
	}

	// The rerun resumes at the failed notification and skips nothing after it.
	healthy := newLocalHandler(t, r, 0)
	code, _, errOut = reconcile(t, s, r, ckpt, "--handler-url", healthy.URL, "--page-size", "3")
	if code != 0 {
		t.Fatalf("rerun: exit %d\n%s", code, errOut)
	}
	if got := healthy.ids(); !slices.Equal(got, ids[k-1:]) {
		t.Fatalf("rerun handled %v, want %v", got, ids[k-1:])
	}
	if !strings.Contains(errOut, fmt.Sprintf("reconcile: done: %d handled, %d skipped", len(ids)-k+1, k-1)) {
		t.Errorf("rerun summary:\n%s", errOut)
	}
	if ck := readCheckpoint(t, ckpt); ck.ID != ids[len(ids)-1] {
		t.Errorf("final checkpoint at %s, want %s", ck.ID, ids[len(ids)-1])
	}
}

func TestReconcileCatchesLateCommittedRows(t *testing.T) {
	t.Parallel()
	s, r, ids, ckpt := reconcileSetup(t, 4)
	h := newLocalHandler(t, r, 0)
	if code, _, errOut := reconcile(t, s, r, ckpt, "--handler-url", h.URL); code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	pos := readCheckpoint(t, ckpt).CreatedAt

	// A row that commits late carries a created_at before rows already
	// listed. Simulate two: one inside the overlap window, one outside it.
	late := sendMany(t, s, r.ID, "late", 2)
	backdate := func(id string, to time.Time) {
		if _, err := s.Store.Pool().Exec(context.Background(), `UPDATE notifications SET created_at = $2 WHERE id = $1`, id, to); err != nil {
			t.Fatal(err)
		}
	}
	backdate(late[0], pos.Add(-2*time.Minute))
	backdate(late[1], pos.Add(-20*time.Minute))

	code, _, errOut := reconcile(t, s, r, ckpt, "--handler-url", h.URL)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	got := h.ids()
	if !slices.Equal(got[len(ids):], late[:1]) {
		t.Fatalf("after the late rows the handler got %v, want only %s (inside the 5 min overlap)", got[len(ids):], late[0])
	}
	// A wider overlap reaches the other one; the ids already handled stay skipped.
	code, _, errOut = reconcile(t, s, r, ckpt, "--handler-url", h.URL, "--overlap", "30m")
	if got := h.ids(); code != 0 || !slices.Equal(got[len(ids)+1:], late[1:]) {
		t.Fatalf("with --overlap 30m: exit %d, handler got %v, want %s\n%s", code, got[len(ids)+1:], late[1], errOut)
	}
}

func TestReconcileToStdout(t *testing.T) {
	t.Parallel()
	s, r, ids, ckpt := reconcileSetup(t, 5)
	dir := filepath.Dir(ckpt)

	code, out, errOut := reconcile(t, s, r, ckpt)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var got []string
	for _, l := range lines {
		var n client.Notification
		if err := json.Unmarshal([]byte(l), &n); err != nil || n.ReceiverID != r.ID || n.EventType != "trade.paid" || len(n.Payload) == 0 {
			t.Fatalf("line %q: %+v (%v)", l, n, err)
		}
		got = append(got, n.ID)
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("printed %v, want %v", got, ids)
	}
	// A second run prints nothing; no temporary files are left behind.
	if code, out, _ := reconcile(t, s, r, ckpt); code != 0 || out != "" {
		t.Errorf("second run: exit %d, printed %q", code, out)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"notifyd.ckpt", "notifyd.ckpt.lock"}) {
		t.Errorf("checkpoint directory holds %v", names)
	}
}

func TestReconcileStatusFilterAndSince(t *testing.T) {
	t.Parallel()
	s := notifydtest.Start(t)
	cb := apitest.NewCallbackServer(t, http.StatusOK)
	r := s.CreateReceiver(cb.URL, map[string]any{"retry": map[string]any{"max_attempts": 1}})
	delivered := sendMany(t, s, r.ID, "ok", 2)
	s.WaitStatus(10*time.Second, client.StatusDelivered, delivered...)
	cb.SetStatus(http.StatusInternalServerError)
	failed := sendMany(t, s, r.ID, "bad", 2)
	s.WaitStatus(10*time.Second, client.StatusFailed, failed...)

	dir := t.TempDir()
	h := newLocalHandler(t, r, 0)
	code, _, errOut := reconcile(t, s, r, filepath.Join(dir, "failed.ckpt"), "--handler-url", h.URL, "--status", "failed")
	if code != 0 || !slices.Equal(h.ids(), failed) {
		t.Fatalf("--status failed: exit %d, handled %v, want %v\n%s", code, h.ids(), failed, errOut)
	}
	h2 := newLocalHandler(t, r, 0)
	code, _, errOut = reconcile(t, s, r, filepath.Join(dir, "two.ckpt"), "--handler-url", h2.URL, "--status", "delivered,cancelled")
	if code != 0 || !slices.Equal(h2.ids(), delivered) {
		t.Fatalf("--status delivered,cancelled: exit %d, handled %v, want %v\n%s", code, h2.ids(), delivered, errOut)
	}
	// --since in the future on a first run: nothing yet.
	code, out, errOut := reconcile(t, s, r, filepath.Join(dir, "future.ckpt"), "--since", time.Now().Add(time.Hour).Format(time.RFC3339))
	if code != 0 || out != "" || !strings.Contains(errOut, "checkpoint at none yet") {
		t.Fatalf("future --since: exit %d, printed %q\n%s", code, out, errOut)
	}
}

func TestReconcileRefusesUnsafeStarts(t *testing.T) {
	t.Parallel()
	s := notifydtest.Start(t)
	cb := apitest.NewCallbackServer(t, http.StatusOK)
	r := s.CreateReceiver(cb.URL, nil)
	other := s.CreateReceiver(cb.URL, nil)
	sendMany(t, s, r.ID, "order", 1)
	sendMany(t, s, other.ID, "order", 1)
	dir := t.TempDir()

	// Another run holds the lock.
	locked := filepath.Join(dir, "locked.ckpt")
	unlock, err := lockFile(locked + ".lock")
	if err != nil {
		t.Fatal(err)
	}
	code, _, errOut := reconcile(t, s, r, locked)
	unlock()
	if code != 1 || !strings.Contains(errOut, "another notifyctl reconcile holds the lock") {
		t.Errorf("locked: exit %d\n%s", code, errOut)
	}

	// A corrupt checkpoint is not silently restarted from scratch.
	corrupt := filepath.Join(dir, "corrupt.ckpt")
	if err := os.WriteFile(corrupt, []byte(`{"version":1,"created_at":`), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := reconcile(t, s, r, corrupt); code != 1 || out != "" || !strings.Contains(errOut, "is corrupt") {
		t.Errorf("corrupt: exit %d, printed %q\n%s", code, out, errOut)
	}

	// One receiver's checkpoint is not continued with another's key.
	mine := filepath.Join(dir, "mine.ckpt")
	if code, _, errOut := reconcile(t, s, r, mine); code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	if code, out, errOut := reconcile(t, s, other, mine, "--overlap", "1h"); code != 1 || out != "" || !strings.Contains(errOut, "follows receiver "+r.ID) {
		t.Errorf("other receiver's key: exit %d, printed %q\n%s", code, out, errOut)
	}
	if code, _, errOut := ctl(t, "--url", s.URL, "--token", apitest.AdminToken, "reconcile", "--checkpoint", mine, "--receiver", other.ID); code != 1 ||
		!strings.Contains(errOut, "belongs to receiver "+r.ID) {
		t.Errorf("admin --receiver other: exit %d\n%s", code, errOut)
	}
	// The admin token with --receiver reconciles that receiver.
	if code, out, errOut := ctl(t, "--url", s.URL, "--token", apitest.AdminToken, "reconcile", "--checkpoint", filepath.Join(dir, "admin.ckpt"),
		"--receiver", other.ID); code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, other.ID) {
		t.Errorf("admin --receiver: exit %d, printed %q\n%s", code, out, errOut)
	}
}

func TestCheckpointPrune(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := newCheckpoint()
	for i, ago := range []time.Duration{10 * time.Minute, 5 * time.Minute, 4 * time.Minute, 0} {
		c.handled(&client.Notification{ID: fmt.Sprintf("n%d", i), CreatedAt: base.Add(-ago)})
	}
	c.prune(5 * time.Minute)
	var kept []string
	for id := range c.Seen {
		kept = append(kept, id)
	}
	slices.Sort(kept)
	// The run starts at position − overlap inclusive, so an id exactly at
	// that bound must still be remembered.
	if !slices.Equal(kept, []string{"n1", "n2", "n3"}) || c.ID != "n3" || !c.CreatedAt.Equal(base) {
		t.Errorf("after prune: seen %v, position %s %s", kept, c.CreatedAt, c.ID)
	}
	// Equal created_at orders by id, as the API does.
	c.handled(&client.Notification{ID: "n0", CreatedAt: base})
	if c.ID != "n3" {
		t.Errorf("position moved back to %s", c.ID)
	}
	c.handled(&client.Notification{ID: "n9", CreatedAt: base})
	if c.ID != "n9" {
		t.Errorf("position %s, want n9", c.ID)
	}
}

// --unsigned posts the API's JSON, for a handler written for the listing's
// shape; no signing secret is needed.
func TestReconcileUnsigned(t *testing.T) {
	t.Parallel()
	s, r, ids, ckpt := reconcileSetup(t, 2)
	var mu sync.Mutex
	var got []client.Notification
	h := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var n client.Notification
		if err := json.NewDecoder(req.Body).Decode(&n); err != nil || req.Header.Get("Notifyd-Notification-Id") != n.ID ||
			req.Header.Get("webhook-signature") != "" || req.Header.Get("Notifyd-Reconcile") != "1" {
			t.Errorf("unsigned request: %v %v", req.Header, err)
		}
		mu.Lock()
		got = append(got, n)
		mu.Unlock()
	}))
	t.Cleanup(h.Close)
	code, _, errOut := ctl(t, "--url", s.URL, "--token", r.APIKey, "reconcile", "--checkpoint", ckpt, "--handler-url", h.URL, "--unsigned")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0].ID != ids[0] || got[1].ID != ids[1] || got[0].EventType != "trade.paid" || len(got[0].Payload) == 0 {
		t.Errorf("handler got %+v, want the API's JSON of %v", got, ids)
	}
}
