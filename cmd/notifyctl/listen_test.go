package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/notifyd/notifyd/cmd/notifyd/notifydtest"
	"github.com/notifyd/notifyd/internal/apitest"
	"github.com/notifyd/notifyd/internal/testenv"
	"github.com/notifyd/notifyd/query/webhook"
)

// TestListenForwardsVerifiableCallbacksAndAcks: `notifyctl listen` takes a
// pull receiver's stream and forwards each notification to a local handler
// written as for callbacks (query/webhook.Handler), which verifies the
// signature; the official Standard Webhooks library verifies the same
// requests. A 2xx acknowledges; the handler's one 500 leaves that
// notification unacknowledged until its next offer, forwarded again.
func TestListenForwardsVerifiableCallbacksAndAcks(t *testing.T) {
	t.Parallel()
	s := notifydtest.Start(t)
	r := s.CreateReceiver("", map[string]any{"delivery": "pull",
		"retry": map[string]any{"max_attempts": 3, "intervals": []string{"1s", "1s"}}})
	official, err := standardwebhooks.NewWebhook(r.SigningSecret)
	if err != nil {
		t.Fatal(err)
	}
	v, err := webhook.NewVerifier(r.SigningSecret)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	handled := map[string]int{}
	var problems, handlerErrs []string
	failedOnce := false
	business := webhook.Handler(v, func(_ context.Context, e *webhook.Event) error {
		mu.Lock()
		defer mu.Unlock()
		if e.IdempotencyKey == "order-2" && !failedOnce {
			failedOnce = true
			return fmt.Errorf("ledger unavailable") // answered 500: notifyd offers it again
		}
		handled[e.ID]++
		return nil
	}, webhook.WithErrorLog(func(_ *http.Request, err error) {
		mu.Lock()
		defer mu.Unlock()
		handlerErrs = append(handlerErrs, err.Error())
	}))
	local := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if err := official.Verify(body, req.Header); err != nil || !strings.HasPrefix(req.UserAgent(), "notifyd/") ||
			req.Header.Get("Notifyd-Attempt") == "" || req.Header.Get("Content-Type") != "application/json" {
			mu.Lock()
			problems = append(problems, fmt.Sprintf("forwarded request %v: %v", req.Header, err))
			mu.Unlock()
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		business.ServeHTTP(w, req)
	}))
	t.Cleanup(local.Close)

	var ids []string
	for i := 1; i <= 3; i++ {
		var out struct{ ID string }
		s.Call("POST", "/v1/notifications", apitest.ProducerToken, map[string]any{"receiver_id": r.ID,
			"event_type": "trade.paid", "idempotency_key": fmt.Sprintf("order-%d", i), "payload": map[string]any{"i": i}},
			http.StatusAccepted, &out)
		ids = append(ids, out.ID)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr testenv.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"listen", "--url", s.URL, "--token", r.APIKey, "--forward", local.URL, "--json"}, &stdout, &stderr)
	}()
	s.WaitStatus(30*time.Second, "delivered", ids...)
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("listen exited %d: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("listen did not stop after its context ended")
	}

	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Errorf("local handler: %v", problems)
	}
	if len(handlerErrs) != 1 || !strings.Contains(handlerErrs[0], "ledger unavailable") {
		t.Errorf("webhook.Handler errors %v, want only the business function's one failure", handlerErrs)
	}
	for _, id := range ids {
		if handled[id] != 1 {
			t.Errorf("notification %s handled %d times, want 1", id, handled[id])
		}
	}
	// One line per event: three first offers and order-2's second.
	var lines []outcome
	for line := range strings.Lines(strings.TrimSpace(stdout.String())) {
		var o outcome
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatalf("stdout line %q: %v", line, err)
		}
		lines = append(lines, o)
	}
	acked, refused := 0, 0
	for _, o := range lines {
		switch {
		case o.Acked && o.Status == http.StatusNoContent:
			acked++
		case !o.Acked && o.Status == http.StatusInternalServerError && o.ID == ids[1]:
			refused++
		default:
			t.Errorf("line %+v", o)
		}
	}
	if acked != 3 || refused != 1 {
		t.Errorf("lines: %d acked, %d refused, want 3 and 1:\n%s", acked, refused, stdout.String())
	}
}

// TestListenUsage: mistakes on the command line are usage errors; a push
// receiver's key is refused by the API and ends listen (and ack) with
// status 1.
func TestListenUsage(t *testing.T) {
	t.Parallel()
	s := notifydtest.Start(t)
	push := s.CreateReceiver("http://127.0.0.1:9/", nil)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"listen", "--token", "nfy_x"}, exitUsage, "--forward URL is required"},
		{[]string{"listen", "--token", "nfy_x", "--forward", "localhost:3000"}, exitUsage, "http(s) URL"},
		{[]string{"listen", "--url", s.URL, "--token", push.APIKey, "--forward", "http://127.0.0.1:9/"}, exitFail, "delivery_not_pull"},
		{[]string{"ack", "--token", "nfy_x"}, exitUsage, "at least one notification id"},
		{[]string{"ack", "--url", s.URL, "--token", push.APIKey, "00000000-0000-0000-0000-000000000001"}, exitFail, "delivery_not_pull"},
	}
	for _, tc := range cases {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), tc.args, &stdout, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d with %q", tc.args, code, stderr.String(), tc.code, tc.want)
		}
	}
}

// TestAckByHand: `notifyctl ack` acknowledges a pull receiver's
// notifications; an id that is not its own is reported and exits 1.
func TestAckByHand(t *testing.T) {
	t.Parallel()
	s := notifydtest.Start(t)
	r := s.CreateReceiver("", map[string]any{"delivery": "pull"})
	var out struct{ ID string }
	s.Call("POST", "/v1/notifications", apitest.ProducerToken, map[string]any{"receiver_id": r.ID,
		"event_type": "trade.paid", "idempotency_key": "by-hand", "payload": map[string]any{}}, http.StatusAccepted, &out)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"ack", "--url", s.URL, "--token", r.APIKey, out.ID}, &stdout, &stderr); code != exitOK ||
		stdout.String() != out.ID+"  acked\n" {
		t.Fatalf("ack: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	s.WaitStatus(10*time.Second, "delivered", out.ID)
	stdout.Reset()
	unknown := "00000000-0000-0000-0000-000000000002"
	if code := run(context.Background(), []string{"ack", "--url", s.URL, "--token", r.APIKey, out.ID, unknown}, &stdout, &stderr); code != exitFail ||
		!strings.Contains(stderr.String(), unknown) {
		t.Errorf("ack with an unknown id: exit %d, stderr %q", code, stderr.String())
	}
}

// TestListenReconnectsWithLastEventID: when the stream breaks, listen
// connects again with the id of the last event it got, so nothing is
// forwarded twice and nothing sent meanwhile is missed.
func TestListenReconnectsWithLastEventID(t *testing.T) {
	t.Parallel()
	s := notifydtest.Start(t)
	r := s.CreateReceiver("", map[string]any{"delivery": "pull",
		"retry": map[string]any{"max_attempts": 2, "intervals": []string{"10m"}}})
	api, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	// A proxy in front of the API that cuts the first stream after 1.5 s
	// and notes the Last-Event-ID of every stream request.
	proxy := httputil.NewSingleHostReverseProxy(api)
	proxy.FlushInterval = -1
	var mu sync.Mutex
	var resumes []string
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/v1/notifications/stream" {
			mu.Lock()
			resumes = append(resumes, req.Header.Get("Last-Event-ID"))
			first := len(resumes) == 1
			mu.Unlock()
			if first {
				ctx, cancel := context.WithTimeout(req.Context(), 1500*time.Millisecond)
				defer cancel()
				req = req.WithContext(ctx)
			}
		}
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(front.Close)
	var hmu sync.Mutex
	forwarded := map[string]int{}
	local := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		hmu.Lock()
		forwarded[req.Header.Get("Webhook-Id")]++
		hmu.Unlock()
	}))
	t.Cleanup(local.Close)
	send := func(key string) string {
		var out struct{ ID string }
		s.Call("POST", "/v1/notifications", apitest.ProducerToken, map[string]any{"receiver_id": r.ID,
			"event_type": "trade.paid", "idempotency_key": key, "payload": map[string]any{}}, http.StatusAccepted, &out)
		return out.ID
	}

	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr testenv.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"listen", "--url", front.URL, "--token", r.APIKey, "--forward", local.URL}, &stdout, &stderr)
	}()
	first := send("first")
	s.WaitStatus(30*time.Second, "delivered", first)
	// Sent around the cut: the first stream is gone or about to go.
	time.Sleep(1500 * time.Millisecond)
	second := send("second")
	s.WaitStatus(30*time.Second, "delivered", second)
	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("listen exited %d: %s", code, stderr.String())
	}

	mu.Lock()
	defer mu.Unlock()
	if len(resumes) < 2 || resumes[0] != "" || resumes[1] == "" {
		t.Errorf("stream requests' Last-Event-ID: %q; want none, then the first event's", resumes)
	}
	hmu.Lock()
	defer hmu.Unlock()
	if forwarded[first] != 1 || forwarded[second] != 1 || len(forwarded) != 2 {
		t.Errorf("forwarded %v, want each of %s and %s once; stdout:\n%s\nstderr:\n%s\nresumes %q", forwarded, first, second, stdout.String(), stderr.String(), resumes)
	}
	if !strings.Contains(stderr.String(), "reconnecting") {
		t.Errorf("stderr %q: no word of the reconnection", stderr.String())
	}
}
