package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/netguard"
	"github.com/notifyd/notifyd/internal/signing"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/tasks"
	"github.com/notifyd/notifyd/internal/testenv"
)

const testUserAgent = "notifyd-test/1.0"

var (
	testKeyOld = []byte("0123456789abcdef0123456789abcdef")
	testKeyNew = []byte("fedcba9876543210fedcba9876543210")
)

// countingTransport wraps the deliverer's real transport and counts the
// response body bytes attempt reads, so tests can prove the read bound.
type countingTransport struct {
	base http.RoundTripper
	read atomic.Int64
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(req)
	if resp != nil {
		resp.Body = &countingBody{ReadCloser: resp.Body, n: &c.read}
	}
	return resp, err
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// testDeliverer is the worker's real deliverer with a byte counter around
// its transport. It allows loopback targets, where the test servers live.
func testDeliverer(policy netguard.Policy) (*deliverer, *countingTransport) {
	d := newDeliverer(policy, testUserAgent)
	ct := &countingTransport{base: d.client.Transport}
	d.client.Transport = ct
	return d, ct
}

func testRequest(url string, timeout time.Duration) *attemptRequest {
	return &attemptRequest{
		ID:      "msg_" + uuid.NewString(),
		URL:     url,
		Body:    []byte(`{"id":"x","type":"trade.paid","data":{"amount":100}}`),
		Attempt: 3,
		Signer:  signing.NewSigner(testKeyNew, testKeyOld),
		Timeout: timeout,
	}
}

// target is a receiver that counts TCP connections and requests, so a test
// can show that nothing reached it.
type target struct {
	*httptest.Server
	conns atomic.Int32
	hits  atomic.Int32

	mu       sync.Mutex
	lastHdr  http.Header
	lastBody []byte
}

func newTarget(t *testing.T, h http.HandlerFunc) *target {
	t.Helper()
	tg := &target{}
	tg.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		tg.mu.Lock()
		tg.lastHdr, tg.lastBody = r.Header.Clone(), body
		tg.mu.Unlock()
		tg.hits.Add(1)
		if h != nil {
			h(w, r)
		}
	}))
	tg.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			tg.conns.Add(1)
		}
	}
	tg.Start()
	t.Cleanup(tg.Close)
	return tg
}

func (tg *target) last() (http.Header, []byte) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.lastHdr, tg.lastBody
}

// stream writes chunk every interval until the client goes away or
// maxDuration passes (so a test server can never hang a test).
func stream(chunk []byte, interval, maxDuration time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		deadline := time.Now().Add(maxDuration)
		for time.Now().Before(deadline) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
			if interval > 0 {
				select {
				case <-r.Context().Done():
					return
				case <-time.After(interval):
				}
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }

func checkStorable(t *testing.T, what, s string) {
	t.Helper()
	if len(s) > maxResponseStore {
		t.Errorf("%s is %d bytes, want at most %d", what, len(s), maxResponseStore)
	}
	if !utf8.ValidString(s) {
		t.Errorf("%s is not valid UTF-8: %q", what, s)
	}
	if strings.IndexByte(s, 0) >= 0 {
		t.Errorf("%s contains a NUL byte: %q", what, s)
	}
}

func TestAttemptOutcomes(t *testing.T) {
	t.Parallel()
	const short = 800 * time.Millisecond
	tests := []struct {
		name        string
		handler     http.HandlerFunc
		successBody *string
		timeout     time.Duration
		outcome     string
		status      int
		errHas      string
		body        *string // exact stored body, when it matters
		maxRead     int64   // response bytes attempt may read; 0: not checked
		minDur      time.Duration
	}{
		{name: "200", handler: answer(200, "ok"), outcome: store.OutcomeSuccess, status: 200, body: ptr("ok")},
		{name: "204 without body", handler: answer(204, ""), outcome: store.OutcomeSuccess, status: 204, body: ptr("")},
		{name: "success_body matches after trimming", handler: answer(201, "  SUCCESS \r\n"), successBody: ptr("SUCCESS"),
			outcome: store.OutcomeSuccess, status: 201},
		{name: "success_body mismatch", handler: answer(200, "FAIL"), successBody: ptr("SUCCESS"),
			outcome: store.OutcomeFailure, status: 200, errHas: `"SUCCESS"`, body: ptr("FAIL")},
		{name: "success_body is case sensitive", handler: answer(200, "success"), successBody: ptr("SUCCESS"),
			outcome: store.OutcomeFailure, status: 200},
		{name: "success_body against empty body", handler: answer(200, ""), successBody: ptr("SUCCESS"),
			outcome: store.OutcomeFailure, status: 200},
		{name: "410 gone", handler: answer(410, "bye"), outcome: store.OutcomeGone, status: 410, body: ptr("bye")},
		{name: "404", handler: answer(404, "nope"), outcome: store.OutcomeFailure, status: 404, errHas: "HTTP 404"},
		{name: "500", handler: answer(500, "boom"), outcome: store.OutcomeFailure, status: 500, errHas: "HTTP 500", body: ptr("boom")},
		{name: "200 with body cut short", handler: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(200)
			_, _ = w.Write([]byte("only ten b"))
			http.NewResponseController(w).Flush()
			panic(http.ErrAbortHandler) // drop the connection mid-body
		}, outcome: store.OutcomeFailure, status: 200, errHas: "reading body"},

		// Hostile answers.
		{name: "10 MiB body", handler: answer(200, strings.Repeat("a", 10<<20)),
			outcome: store.OutcomeSuccess, status: 200, body: ptr(strings.Repeat("a", maxResponseStore)), maxRead: maxResponseRead},
		{name: "10 MiB of invalid UTF-8 and NUL", handler: answer(500, strings.Repeat("\xff\x00", 5<<20)),
			outcome: store.OutcomeFailure, status: 500, maxRead: maxResponseRead},
		{name: "invalid UTF-8 and NUL bytes", handler: answer(200, "ok\x00\xff\xfe\xc3"),
			outcome: store.OutcomeSuccess, status: 200, body: ptr("ok\uFFFD")},
		{name: "invalid bytes that grow when replaced", handler: answer(500, strings.Repeat("\xffa", maxResponseStore)),
			outcome: store.OutcomeFailure, status: 500},
		{name: "multi-byte character at the cut", handler: answer(200, strings.Repeat("a", maxResponseStore-1)+"€€€"),
			outcome: store.OutcomeSuccess, status: 200, body: ptr(strings.Repeat("a", maxResponseStore-1))},
		{name: "endless fast stream is cut by size", handler: stream(bytes.Repeat([]byte("x"), 32<<10), 0, 20*time.Second),
			timeout: 20 * time.Second, outcome: store.OutcomeSuccess, status: 200, maxRead: maxResponseRead},
		{name: "endless slow stream is cut by the timeout", handler: stream(bytes.Repeat([]byte("y"), 1<<10), 20*time.Millisecond, 20*time.Second),
			timeout: short, outcome: store.OutcomeTimeout, status: 200, errHas: "timed out", maxRead: maxResponseRead, minDur: short},
		{name: "slow trickle of one byte per 100 ms", handler: stream([]byte("z"), 100*time.Millisecond, 20*time.Second),
			timeout: time.Second, outcome: store.OutcomeTimeout, status: 200, errHas: "timed out", minDur: time.Second},
		{name: "headers never come", handler: func(_ http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(20 * time.Second):
			}
		}, timeout: short, outcome: store.OutcomeTimeout, errHas: "timed out", minDur: short},
		{name: "huge response headers", handler: func(w http.ResponseWriter, _ *http.Request) {
			for i := range 64 {
				w.Header().Set(fmt.Sprintf("X-Junk-%d", i), strings.Repeat("j", 1<<10))
			}
			w.WriteHeader(200)
		}, outcome: store.OutcomeFailure, errHas: "headers exceeded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tg := newTarget(t, tc.handler)
			d, ct := testDeliverer(netguard.Policy{AllowPrivate: true})
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 10 * time.Second
			}
			req := testRequest(tg.URL+"/hook", timeout)
			req.SuccessBody = tc.successBody
			res := d.attempt(context.Background(), req)

			if res.Outcome != tc.outcome || res.StatusCode != tc.status {
				t.Fatalf("outcome %q status %d (err %q), want %q %d", res.Outcome, res.StatusCode, res.Error, tc.outcome, tc.status)
			}
			if tc.errHas != "" && !strings.Contains(res.Error, tc.errHas) {
				t.Errorf("error %q does not mention %q", res.Error, tc.errHas)
			}
			if tc.outcome == store.OutcomeSuccess && res.Error != "" {
				t.Errorf("success with error %q", res.Error)
			}
			if tc.body != nil && res.Body != *tc.body {
				t.Errorf("stored body %q (%d bytes), want %q", truncateForLog(res.Body), len(res.Body), truncateForLog(*tc.body))
			}
			checkStorable(t, "stored body", res.Body)
			checkStorable(t, "stored error", res.Error)
			if tc.maxRead > 0 {
				if n := ct.read.Load(); n > tc.maxRead {
					t.Errorf("read %d response bytes, want at most %d", n, tc.maxRead)
				}
			}
			// Timing: generous bounds only. Nothing may run far past its
			// timeout, and a timeout outcome must not come early.
			if res.Duration > timeout+5*time.Second {
				t.Errorf("attempt took %s with a %s timeout", res.Duration, timeout)
			}
			if res.Duration < tc.minDur {
				t.Errorf("attempt took %s, less than %s", res.Duration, tc.minDur)
			}
			if res.Started.IsZero() || res.Duration <= 0 {
				t.Errorf("started %v duration %s", res.Started, res.Duration)
			}
		})
	}
}

func answer(code int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

func truncateForLog(s string) string {
	if len(s) > 80 {
		return s[:80] + fmt.Sprintf("…(%d bytes)", len(s))
	}
	return s
}

func TestAttemptConnectionRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	d, _ := testDeliverer(netguard.Policy{AllowPrivate: true})
	res := d.attempt(context.Background(), testRequest("http://"+addr+"/", 5*time.Second))
	if res.Outcome != store.OutcomeFailure || res.StatusCode != 0 || !strings.Contains(res.Error, "refused") {
		t.Fatalf("got %+v, want a failure mentioning the refused connection", res)
	}
	if strings.Contains(res.Error, "POST") {
		t.Errorf("error repeats the request line: %q", res.Error)
	}
}

// A receiver that accepts the TCP connection and then says nothing at all,
// not even an HTTP status line.
func TestAttemptSilentServer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held sync.WaitGroup
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close(); held.Wait() })
	held.Add(1)
	go func() {
		defer held.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held.Add(1)
			go func() {
				defer held.Done()
				defer c.Close()
				go func() { _, _ = io.Copy(io.Discard, c) }()
				<-done
			}()
		}
	}()
	d, _ := testDeliverer(netguard.Policy{AllowPrivate: true})
	const timeout = 700 * time.Millisecond
	res := d.attempt(context.Background(), testRequest("http://"+ln.Addr().String()+"/", timeout))
	if res.Outcome != store.OutcomeTimeout || res.StatusCode != 0 {
		t.Fatalf("got %+v, want timeout", res)
	}
	if res.Duration < timeout || res.Duration > timeout+5*time.Second {
		t.Errorf("took %s with a %s timeout", res.Duration, timeout)
	}
}

// A receiver whose header block carries raw invalid bytes: whatever the
// transport reports must still be storable.
func TestAttemptMalformedResponse(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, raw string }{
		{"bad header line", "HTTP/1.1 200 OK\r\nX: ok\r\n\xff\x00bad line\r\nContent-Length: 0\r\n\r\n"},
		{"bad status line", "HTTP/1.1 2\xff\x00 OK\r\n\r\n"},
		{"long garbage status line", strings.Repeat("\xfe\x00", 15<<10) + "\r\n\r\n"},
		{"not HTTP at all", "SSH-2.0-OpenSSH_9.6\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := rawServer(t, tc.raw)
			d, _ := testDeliverer(netguard.Policy{AllowPrivate: true})
			res := d.attempt(context.Background(), testRequest("http://"+addr+"/", 5*time.Second))
			if res.Outcome != store.OutcomeFailure || res.Error == "" {
				t.Fatalf("got %+v, want failure", res)
			}
			checkStorable(t, "stored error", res.Error)
		})
	}
}

// rawServer answers every connection with raw bytes and closes it.
func rawServer(t *testing.T, raw string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				buf := make([]byte, 4096)
				_, _ = c.Read(buf) // the request head; the body may follow, ignored
				_, _ = io.WriteString(c, raw)
			}()
		}
	}()
	return ln.Addr().String()
}

func TestAttemptRedirectIsFailureAndNotFollowed(t *testing.T) {
	t.Parallel()
	for _, code := range []int{301, 302, 303, 307, 308} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			t.Parallel()
			elsewhere := newTarget(t, answer(200, "ok"))
			redirector := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, elsewhere.URL+"/stolen", code)
			})
			d, _ := testDeliverer(netguard.Policy{AllowPrivate: true})
			res := d.attempt(context.Background(), testRequest(redirector.URL+"/hook", 5*time.Second))
			if res.Outcome != store.OutcomeFailure || res.StatusCode != code || !strings.Contains(res.Error, "redirect") {
				t.Fatalf("got %+v, want failure with status %d", res, code)
			}
			if redirector.hits.Load() != 1 {
				t.Errorf("redirector got %d requests, want 1", redirector.hits.Load())
			}
			if n := elsewhere.conns.Load(); n != 0 {
				t.Errorf("redirect target got %d connections, want none", n)
			}
		})
	}
}

func TestAttemptRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		code     int
		header   func() string
		min, max time.Duration
	}{
		{"429 seconds", 429, func() string { return "7" }, 7 * time.Second, 7 * time.Second},
		{"503 seconds", 503, func() string { return "120" }, 120 * time.Second, 120 * time.Second},
		{"503 HTTP date", 503, func() string { return time.Now().Add(2 * time.Minute).UTC().Format(http.TimeFormat) }, 100 * time.Second, 121 * time.Second},
		{"429 HTTP date in the past", 429, func() string { return time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat) }, 0, 0},
		{"429 negative", 429, func() string { return "-5" }, 0, 0},
		{"429 garbage", 429, func() string { return "soon" }, 0, 0},
		{"429 absent", 429, func() string { return "" }, 0, 0},
		{"429 absurdly large is clamped", 429, func() string { return "99999999999999" }, 24 * time.Hour, 400 * 24 * time.Hour},
		{"500 ignores Retry-After", 500, func() string { return "7" }, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tg := newTarget(t, func(w http.ResponseWriter, _ *http.Request) {
				if v := tc.header(); v != "" {
					w.Header().Set("Retry-After", v)
				}
				w.WriteHeader(tc.code)
			})
			d, _ := testDeliverer(netguard.Policy{AllowPrivate: true})
			res := d.attempt(context.Background(), testRequest(tg.URL, 5*time.Second))
			if res.Outcome != store.OutcomeFailure || res.StatusCode != tc.code {
				t.Fatalf("got %+v", res)
			}
			if res.RetryAfter < tc.min || res.RetryAfter > tc.max {
				t.Errorf("RetryAfter %s, want within [%s, %s]", res.RetryAfter, tc.min, tc.max)
			}
		})
	}
}

func TestAttemptSendsSignedHeaders(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, answer(200, "ok"))
	d, _ := testDeliverer(netguard.Policy{AllowPrivate: true})
	req := testRequest(tg.URL+"/hook?x=1", 5*time.Second)
	res := d.attempt(context.Background(), req)
	if res.Outcome != store.OutcomeSuccess {
		t.Fatalf("got %+v", res)
	}
	h, body := tg.last()
	if !bytes.Equal(body, req.Body) {
		t.Errorf("body %q, want %q", body, req.Body)
	}
	for name, want := range map[string]string{
		"Content-Type":          "application/json",
		"User-Agent":            testUserAgent,
		"Webhook-Id":            req.ID,
		"Webhook-Timestamp":     strconv.FormatInt(res.Started.Unix(), 10),
		"Notifyd-Attempt":       "3",
		signing.HeaderID:        req.ID,
		signing.HeaderTimestamp: strconv.FormatInt(res.Started.Unix(), 10),
	} {
		if got := h.Values(name); len(got) != 1 || got[0] != want {
			t.Errorf("header %s = %q, want exactly %q", name, got, want)
		}
	}
	sig := h.Get(signing.HeaderSignature)
	if n := len(strings.Fields(sig)); n != 2 {
		t.Errorf("signature header %q has %d signatures, want one per key (2)", sig, n)
	}
	// Either key alone verifies: a receiver holding the old or the new
	// secret accepts the message during rotation.
	for i, key := range [][]byte{testKeyOld, testKeyNew} {
		if err := signing.Verify(h, body, time.Now(), 5*time.Minute, key); err != nil {
			t.Errorf("key %d does not verify: %v", i, err)
		}
	}
	if err := signing.Verify(h, body, time.Now(), 5*time.Minute, []byte("another-key-another-key-another-key")); !errors.Is(err, signing.ErrInvalidSignature) {
		t.Errorf("a foreign key verifies: %v", err)
	}
}

// TestAttemptBlockedTargets runs the worker's real HTTP client with the zero
// policy (production default) against a live server on loopback: every
// spelling of a loopback or private target is recorded as blocked, and no
// TCP connection reaches the server.
func TestAttemptBlockedTargets(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, answer(200, "should never be seen"))
	port := tg.Listener.Addr().(*net.TCPAddr).Port

	var v6 *target
	if ln, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		v6 = &target{}
		v6.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { v6.hits.Add(1) }))
		v6.Listener.Close()
		v6.Listener = ln
		v6.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				v6.conns.Add(1)
			}
		}
		v6.Start()
		t.Cleanup(v6.Close)
	}

	p := strconv.Itoa(port)
	urls := []string{
		"http://127.0.0.1:" + p + "/",
		"http://localhost:" + p + "/",
		"http://LOCALHOST.:" + p + "/",
		"http://api.localhost:" + p + "/",
		"http://0x7f000001:" + p + "/",
		"http://2130706433:" + p + "/",
		"http://0177.0.0.1:" + p + "/",
		"http://0x7f.1:" + p + "/",
		"http://127.1:" + p + "/",
		"http://[::ffff:127.0.0.1]:" + p + "/",
		"http://[::ffff:7f00:1]:" + p + "/",
		"http://0.0.0.0:" + p + "/",
		"http://[::]:" + p + "/",
		"http://169.254.169.254/latest/meta-data/",
		"http://10.0.0.1/", "http://172.16.0.1/", "http://192.168.1.1/",
		"http://100.64.0.1/", "http://224.0.0.1/", "http://[fd00::1]/", "http://[fe80::1]/",
	}
	if v6 != nil {
		urls = append(urls, "http://[::1]:"+strconv.Itoa(v6.Listener.Addr().(*net.TCPAddr).Port)+"/")
	} else {
		urls = append(urls, "http://[::1]:"+p+"/") // still must be blocked, not merely refused
	}
	// A plain DNS name that resolves to loopback is only caught at connect
	// time (policy.Control), since ValidateURL does not resolve names: the
	// machine's own host name usually resolves to loopback through
	// /etc/hosts. Use it when it does.
	if host, err := os.Hostname(); err == nil {
		if addrs, err := net.LookupHost(host); err == nil && len(addrs) > 0 && allLoopback(addrs) {
			urls = append(urls, "http://"+host+":"+p+"/")
		} else {
			t.Logf("host name %q does not resolve to loopback only (%v, %v); dial-time DNS case not covered here", host, addrs, err)
		}
	}

	d, _ := testDeliverer(netguard.Policy{})
	for _, u := range urls {
		t.Run(u, func(t *testing.T) {
			t.Parallel()
			res := d.attempt(context.Background(), testRequest(u, 3*time.Second))
			if res.Outcome != store.OutcomeBlocked || res.StatusCode != 0 {
				t.Fatalf("got outcome %q status %d err %q, want blocked", res.Outcome, res.StatusCode, res.Error)
			}
			checkStorable(t, "stored error", res.Error)
		})
	}
	t.Cleanup(func() {
		// Runs after the parallel subtests above have finished.
		if n := tg.conns.Load(); n != 0 {
			t.Errorf("loopback server got %d connections (%d requests), want none", n, tg.hits.Load())
		}
		if v6 != nil && v6.conns.Load() != 0 {
			t.Errorf("[::1] server got %d connections, want none", v6.conns.Load())
		}
	})
}

func allLoopback(addrs []string) bool {
	for _, a := range addrs {
		ip, err := netip.ParseAddr(a)
		if err != nil || !ip.Unmap().IsLoopback() {
			return false
		}
	}
	return true
}

// TestHostileAnswersAreStorable proves that what attempt keeps from hostile
// answers is accepted by Postgres text columns, by recording it for real.
func TestHostileAnswersAreStorable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := store.Open(ctx, testenv.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	rcv := &store.Receiver{ID: uuid.New(), Name: "hostile", CallbackURL: "https://example.com/cb", SigningSecret: "whsec_x"}
	if err := st.CreateReceiver(ctx, rcv, store.HashAPIKey(uuid.NewString())); err != nil {
		t.Fatal(err)
	}

	d, _ := testDeliverer(netguard.Policy{AllowPrivate: true})
	results := []attemptResult{
		d.attempt(ctx, testRequest(newTarget(t, answer(500, "bad\x00\xff\xfe\xc3 "+strings.Repeat("\xffé\x00", 3000))).URL, 5*time.Second)),
		d.attempt(ctx, testRequest("http://"+rawServer(t, "HTTP/1.1 2\xff\x00 OK\r\n\r\n")+"/", 5*time.Second)),
		d.attempt(ctx, testRequest("http://"+rawServer(t, strings.Repeat("\xfe\x00", 15<<10)+"\r\n\r\n")+"/", 5*time.Second)),
	}
	for i, res := range results {
		if res.Outcome != store.OutcomeFailure {
			t.Fatalf("attempt %d: %+v", i, res)
		}
		key := fmt.Sprintf("hostile-%d", i)
		n := &store.NewNotification{ID: tasks.NotificationID(rcv.ID, key), ReceiverID: rcv.ID, EventType: "trade.paid",
			IdempotencyKey: key, Payload: []byte(`{}`), MaxAttempts: 3}
		row := attemptRow(&tasks.Deliver{ID: n.ID}, 1, &res)
		err := st.RecordAttempts(ctx, []store.AttemptRecord{{Attempt: row, NewStatus: store.StatusPending, NextAttemptAt: time.Now().Add(time.Minute), Create: n}})
		if err != nil {
			t.Fatalf("attempt %d: Postgres refused it: %v", i, err)
		}
		got, err := st.ListAttempts(ctx, n.ID)
		if err != nil || len(got) != 1 {
			t.Fatalf("attempt %d: list: %+v %v", i, got, err)
		}
		if got[0].ResponseBody != res.Body || got[0].Error != res.Error {
			t.Errorf("attempt %d: stored body %q error %q, want %q %q", i, truncateForLog(got[0].ResponseBody), got[0].Error, truncateForLog(res.Body), res.Error)
		}
	}
	if results[0].Body == "" || !strings.HasPrefix(results[0].Body, "bad\uFFFD ") {
		t.Errorf("body lost its readable part: %q", truncateForLog(results[0].Body))
	}
}

func TestStorableBody(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want string // "" with check only
	}{
		{"plain", "hello", "hello"},
		{"NUL removed", "a\x00b", "ab"},
		{"invalid replaced", "a\xffb", "a\uFFFDb"},
		{"run of invalid bytes is one replacement", "a\xff\xfe\xfdb", "a\uFFFDb"},
		{"cut at rune boundary", strings.Repeat("é", maxResponseStore), strings.Repeat("é", maxResponseStore/2)},
		{"cut mid rune drops the partial rune", "x" + strings.Repeat("é", maxResponseStore), "x" + strings.Repeat("é", maxResponseStore/2-1)},
		{"growth by replacement is cut", strings.Repeat("\xffa", maxResponseStore), ""},
		{"only NULs", strings.Repeat("\x00", 10), ""},
	}
	for _, tc := range tests {
		got := storableBody([]byte(tc.in))
		if tc.want != "" && got != tc.want {
			t.Errorf("%s: got %q (%d bytes), want %q", tc.name, truncateForLog(got), len(got), truncateForLog(tc.want))
		}
		checkStorable(t, tc.name, got)
	}
}
