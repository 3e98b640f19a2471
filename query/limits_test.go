package query_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/ingest"
	"github.com/notifyd/notifyd/internal/netguard"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/testenv"
	"github.com/notifyd/notifyd/query"
)

const (
	limitsAdmin    = "limits-admin-token"
	limitsProducer = "limits-producer-token"
	// limitsMaxPayload keeps the size cases small: the body limit is the
	// payload limit plus 16 KiB for the envelope.
	limitsMaxPayload = 4 << 10
	limitsBodyLimit  = limitsMaxPayload + 16<<10
)

// limitsServer runs the real API server (query.Server.Serve, with its own
// http.Server timeouts and header limit) on a loopback port, on the test's
// own database and Redis index, and returns its address.
func limitsServer(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := store.Open(ctx, testenv.Database(t))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	rdb := redis.NewClient(testenv.Redis(t))
	queue := asynq.NewClientFromRedisClient(rdb)
	srv := query.New(st, rdb, queue, query.Config{
		AdminToken: limitsAdmin, ProducerTokens: []string{limitsProducer}, MaxPayload: limitsMaxPayload,
		Targets: netguard.Policy{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		queue.Close()
		rdb.Close()
		st.Close()
	})
	return ln.Addr().String()
}

type apiErrorBody struct {
	Error struct {
		Code, Message, Field string
	}
}

// do sends one request; a nil body sends none, an io.Reader that is not a
// *strings.Reader or *bytes.Reader is sent chunked (no Content-Length).
func do(t *testing.T, addr, method, path, token string, body io.Reader, header http.Header) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

func jsonBody(v any) io.Reader {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return bytes.NewReader(b)
}

// nestedJSON is a JSON value whose arrays and objects nest depth levels.
func nestedJSON(depth int) string {
	return strings.Repeat(`{"a":[`, depth/2) + strings.Repeat(`[`, depth%2) + `1` +
		strings.Repeat(`]`, depth%2) + strings.Repeat(`]}`, depth/2)
}

// chunked hides the length of s from net/http, so the body goes out with
// Transfer-Encoding: chunked and only the reading side can enforce a limit.
func chunked(s string) io.Reader { return io.MultiReader(strings.NewReader(s)) }

func TestRequestBodyLimits(t *testing.T) {
	t.Parallel()
	addr := limitsServer(t)

	var rcv struct{ ID string }
	code, raw := do(t, addr, "POST", "/v1/receivers", limitsAdmin, jsonBody(map[string]any{"name": "shop", "callback_url": "https://hooks.example.com/cb"}), nil)
	if code != http.StatusCreated || json.Unmarshal(raw, &rcv) != nil {
		t.Fatalf("create receiver: %d %s", code, raw)
	}
	// ingestBody is an ingest request with the given fields overriding valid
	// ones; payload is raw JSON text.
	key := 0
	ingestBody := func(eventType, idemKey, payload string) string {
		key++
		if idemKey == "" {
			idemKey = fmt.Sprintf("order-%d", key)
		}
		if eventType == "" {
			eventType = "trade.paid"
		}
		if payload == "" {
			payload = `{"amount":1}`
		}
		b, _ := json.Marshal(map[string]any{"receiver_id": rcv.ID, "event_type": eventType, "idempotency_key": idemKey,
			"payload": json.RawMessage(payload)})
		return string(b)
	}
	receiverBody := func(extra map[string]any) string {
		m := map[string]any{"name": "shop", "callback_url": "https://hooks.example.com/cb"}
		for k, v := range extra {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	intervals := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = "1s"
		}
		return out
	}

	tests := []struct {
		name   string
		method string
		path   string
		token  string
		body   io.Reader
		status int
		code   string // error code; "" for success
		field  string
	}{
		// JSON nesting depth.
		{"payload at the depth limit", "POST", "/v1/notifications", limitsProducer,
			strings.NewReader(ingestBody("", "", nestedJSON(ingest.DefaultMaxDepth))), 202, "", ""},
		{"payload one level too deep", "POST", "/v1/notifications", limitsProducer,
			strings.NewReader(ingestBody("", "", nestedJSON(ingest.DefaultMaxDepth+1))), 422, "invalid_field", "payload"},
		{"payload 5000 levels deep", "POST", "/v1/notifications", limitsProducer,
			strings.NewReader(ingestBody("", "", nestedJSON(5000))), 422, "invalid_field", "payload"},
		{"deep brackets inside a string are text", "POST", "/v1/notifications", limitsProducer,
			strings.NewReader(ingestBody("", "", `{"s":"`+strings.Repeat("[{", 500)+`"}`)), 202, "", ""},
		{"deep body on the admin API", "POST", "/v1/receivers", limitsAdmin,
			strings.NewReader(`{"name":"x","callback_url":"https://hooks.example.com/","retry":` + nestedJSON(200) + `}`), 400, "invalid_json", ""},
		{"deep body sent chunked", "PATCH", "/v1/receivers/" + rcv.ID, limitsAdmin,
			chunked(`{"retry":` + nestedJSON(1000) + `}`), 400, "invalid_json", ""},
		{"deep unterminated body", "POST", "/v1/notifications", limitsProducer,
			strings.NewReader(strings.Repeat("[", 100)), 400, "invalid_json", ""},

		// Body size.
		{"payload over MaxPayload", "POST", "/v1/notifications", limitsProducer,
			strings.NewReader(ingestBody("", "", `"`+strings.Repeat("x", limitsMaxPayload)+`"`)), 422, "invalid_field", "payload"},
		{"body over the limit with Content-Length", "POST", "/v1/notifications", limitsProducer,
			strings.NewReader(ingestBody("", "", `"`+strings.Repeat("x", limitsBodyLimit)+`"`)), 413, "too_large", "payload"},
		{"body over the limit sent chunked", "POST", "/v1/notifications", limitsProducer,
			chunked(ingestBody("", "", `"`+strings.Repeat("x", limitsBodyLimit)+`"`)), 413, "too_large", "payload"},
		{"huge body on the admin API", "POST", "/v1/receivers", limitsAdmin,
			chunked(receiverBody(map[string]any{"name": strings.Repeat("n", 1<<20)})), 413, "too_large", ""},

		// String lengths.
		{"event_type at its limit", "POST", "/v1/notifications", limitsProducer,
			strings.NewReader(ingestBody(strings.Repeat("e", ingest.MaxEventTypeLen), "", "")), 202, "", ""},
		{"event_type over its limit", "POST", "/v1/notifications", limitsProducer,
			strings.NewReader(ingestBody(strings.Repeat("e", ingest.MaxEventTypeLen+1), "", "")), 422, "invalid_field", "event_type"},
		{"idempotency_key at its limit", "POST", "/v1/notifications", limitsProducer,
			strings.NewReader(ingestBody("", strings.Repeat("k", ingest.MaxIdempotencyKeyLen), "")), 202, "", ""},
		{"idempotency_key over its limit", "POST", "/v1/notifications", limitsProducer,
			strings.NewReader(ingestBody("", strings.Repeat("k", ingest.MaxIdempotencyKeyLen+1), "")), 422, "invalid_field", "idempotency_key"},
		{"callback_url over its limit", "POST", "/v1/notifications", limitsProducer,
			jsonBody(map[string]any{"receiver_id": rcv.ID, "event_type": "t", "idempotency_key": "long-url", "payload": 1,
				"callback_url": "https://hooks.example.com/" + strings.Repeat("p", netguard.MaxURLLength)}), 422, "invalid_field", "callback_url"},
		{"receiver name at its limit", "POST", "/v1/receivers", limitsAdmin,
			strings.NewReader(receiverBody(map[string]any{"name": strings.Repeat("n", 200)})), 201, "", ""},
		{"receiver name over its limit", "POST", "/v1/receivers", limitsAdmin,
			strings.NewReader(receiverBody(map[string]any{"name": strings.Repeat("n", 201)})), 422, "invalid_field", "name"},
		{"success_body at its limit", "POST", "/v1/receivers", limitsAdmin,
			strings.NewReader(receiverBody(map[string]any{"success_body": strings.Repeat("s", 256)})), 201, "", ""},
		{"success_body over its limit", "POST", "/v1/receivers", limitsAdmin,
			strings.NewReader(receiverBody(map[string]any{"success_body": strings.Repeat("s", 257)})), 422, "invalid_field", "success_body"},
		{"callback_url of a receiver over its limit", "POST", "/v1/receivers", limitsAdmin,
			strings.NewReader(receiverBody(map[string]any{"callback_url": "https://hooks.example.com/" + strings.Repeat("p", netguard.MaxURLLength)})), 422, "invalid_field", "callback_url"},

		// List lengths.
		{"retry intervals at their limit", "POST", "/v1/receivers", limitsAdmin,
			strings.NewReader(receiverBody(map[string]any{"retry": map[string]any{"intervals": intervals(99)}})), 201, "", ""},
		{"retry intervals over their limit", "POST", "/v1/receivers", limitsAdmin,
			strings.NewReader(receiverBody(map[string]any{"retry": map[string]any{"intervals": intervals(100)}})), 422, "invalid_field", "retry"},
		{"retry intervals list of 4000", "POST", "/v1/receivers", limitsAdmin,
			strings.NewReader(receiverBody(map[string]any{"retry": map[string]any{"intervals": intervals(4000)}})), 422, "invalid_field", "retry"},

		// Tokens.
		{"bearer token longer than 512 bytes", "GET", "/v1/receivers/" + rcv.ID, strings.Repeat("t", 600), nil, 401, "unauthorized", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			status, raw := do(t, addr, tc.method, tc.path, tc.token, tc.body, nil)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %.300s", status, tc.status, raw)
			}
			if tc.code == "" {
				return
			}
			var e apiErrorBody
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatalf("error answer is not the JSON error body: %v: %.300s", err, raw)
			}
			if e.Error.Code != tc.code || e.Error.Field != tc.field || e.Error.Message == "" {
				t.Fatalf("error %+v, want code %q field %q", e.Error, tc.code, tc.field)
			}
			if want, ok := teaching[tc.name]; ok && !want.MatchString(e.Error.Message) {
				t.Fatalf("message %q, want it to say %q", e.Error.Message, want)
			}
		})
	}
}

// teaching is what refusals of TestRequestBodyLimits must say (regular
// expressions): the size and the limit, the depth limit as README states
// it, and the field.
var teaching = map[string]*regexp.Regexp{
	"payload one level too deep": regexp.MustCompile(fmt.Sprintf(`^payload nests arrays and objects deeper than %d levels`, ingest.DefaultMaxDepth)),
	"payload 5000 levels deep":   regexp.MustCompile(fmt.Sprintf(`^payload nests arrays and objects deeper than %d levels`, ingest.DefaultMaxDepth)),
	"body over the limit with Content-Length": regexp.MustCompile(fmt.Sprintf(`^the body is \d+ bytes, larger than the limit of %d bytes \(a payload of at most %d bytes`,
		limitsBodyLimit, limitsMaxPayload)),
	"body over the limit sent chunked": regexp.MustCompile(fmt.Sprintf(`^the body is more than %d bytes, larger than the limit of %d bytes \(a payload of at most %d bytes`,
		limitsBodyLimit, limitsBodyLimit, limitsMaxPayload)),
	"huge body on the admin API": regexp.MustCompile(fmt.Sprintf(`larger than the limit of %d bytes$`, limitsBodyLimit)),
}

func TestRequestHeaderLimit(t *testing.T) {
	t.Parallel()
	addr := limitsServer(t)
	tests := []struct {
		name   string
		size   int
		status int
	}{
		{"16 KiB header is served", 16 << 10, http.StatusOK},
		{"64 KiB header is refused", 64 << 10, http.StatusRequestHeaderFieldsTooLarge},
		{"1 MiB header is refused", 1 << 20, http.StatusRequestHeaderFieldsTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			status, err := rawRequest(addr, "GET /healthz HTTP/1.1\r\nHost: notifyd\r\nX-Big: "+strings.Repeat("h", tc.size)+"\r\n\r\n")
			if err != nil {
				t.Fatal(err)
			}
			if status != tc.status {
				t.Fatalf("status %d, want %d", status, tc.status)
			}
		})
	}
}

// rawRequest writes req on a fresh connection while reading the answer, so
// a server that answers before it has read everything is still heard.
func rawRequest(addr, req string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	go func() { _, _ = io.WriteString(c, req) }()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, fmt.Errorf("read answer: %w", err)
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestSlowLorisHeaders opens a connection and sends the request head one
// byte at a time, never finishing it: the server must hang up once its
// header timeout (5 s) has passed, instead of holding the connection open.
func TestSlowLorisHeaders(t *testing.T) {
	t.Parallel()
	addr := limitsServer(t)
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		head := "GET /healthz HTTP/1.1\r\nHost: notifyd\r\nX-Slow: " + strings.Repeat("s", 1000)
		for i := 0; i < len(head); i++ {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			if _, err := c.Write([]byte{head[i]}); err != nil {
				return
			}
		}
	}()
	// The server may say 400 before hanging up; either way the connection
	// must end (EOF) rather than our read deadline passing.
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	answer, err := io.ReadAll(c)
	elapsed := time.Since(start)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("server still held the trickling connection after %s", elapsed)
	}
	if len(answer) > 0 && !bytes.HasPrefix(answer, []byte("HTTP/1.1 400 ")) && !bytes.HasPrefix(answer, []byte("HTTP/1.1 408 ")) {
		t.Fatalf("server answered %q to an unfinished request head", answer)
	}
	// Generous bounds around the 5 s ReadHeaderTimeout: the connection was
	// kept while bytes trickled in, and dropped well before our 30 s.
	if elapsed < 3*time.Second || elapsed > 15*time.Second {
		t.Fatalf("connection closed after %s, want about 5 s", elapsed)
	}
}
