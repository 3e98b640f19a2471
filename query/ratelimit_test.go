package query

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/apitest"
	"github.com/notifyd/notifyd/internal/netguard"
)

// serveWith starts another real API server on a's database and Redis, with
// the test configuration changed by mod.
func (a *testAPI) serveWith(mod func(*Config)) (*testAPI, string) {
	cfg := Config{
		AdminToken: testAdminToken, ProducerTokens: []string{testProducerToken},
		Targets: netguard.Policy{AllowPrivate: true},
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	mod(&cfg)
	srv := New(a.store, a.rdb, a.queue, cfg)
	hs := httptest.NewServer(srv.Handler())
	a.t.Cleanup(hs.Close)
	c := *a
	c.api, c.srv = apitest.NewClient(a.t, hs.URL), srv
	return &c, hs.URL
}

// rawGet makes a GET with a bearer token and optional X-Forwarded-For.
func rawGet(t *testing.T, url, token, xff string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// want429 checks a rate-limited answer: JSON error body, Retry-After and
// the RateLimit-* headers.
func want429(t *testing.T, resp *http.Response, body []byte, limit int) {
	t.Helper()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("status %d %s, want 429", resp.StatusCode, body)
	}
	if e := apiErr(t, body); e.Code != "rate_limited" {
		t.Errorf("error code %q, want rate_limited", e.Code)
	}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	if got := resp.Header.Get("RateLimit-Limit"); got != strconv.Itoa(limit) {
		t.Errorf("RateLimit-Limit %q, want %d", got, limit)
	}
	if got := resp.Header.Get("RateLimit-Remaining"); got != "0" {
		t.Errorf("RateLimit-Remaining %q, want 0", got)
	}
	if r, err := strconv.Atoi(resp.Header.Get("RateLimit-Reset")); err != nil || r < 1 {
		t.Errorf("RateLimit-Reset %q", resp.Header.Get("RateLimit-Reset"))
	}
}

// TestRateLimitPerPrincipal floods the API from one receiver's key, the
// producer and the admin: each gets its burst, then 429 with the headers,
// while another receiver's key, on the same server, is unaffected.
func TestRateLimitPerPrincipal(t *testing.T) {
	t.Parallel()
	base := newTestAPI(t)
	flooder, other := base.receiver(), base.receiver()
	const burst = 5
	slow := Rate{PerSecond: 0.01, Burst: burst} // no refill within the test
	_, url := base.serveWith(func(c *Config) {
		c.RateLimits = RateLimits{Admin: slow, Producer: slow, Receiver: slow}
	})
	tests := []struct {
		name, path, token string
	}{
		{"receiver key", "/v1/receivers/" + flooder.ID.String(), flooder.APIKey},
		{"admin", "/v1/receivers/summary", testAdminToken},
		{"producer", "/v1/notifications/00000000-0000-0000-0000-000000000000/cancel", testProducerToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := http.MethodGet
			if strings.HasSuffix(tt.path, "/cancel") {
				method = http.MethodPost
			}
			for i := range burst {
				req, _ := http.NewRequest(method, url+tt.path, nil)
				req.Header.Set("Authorization", "Bearer "+tt.token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusTooManyRequests {
					t.Fatalf("request %d of the burst refused", i+1)
				}
				if got := resp.Header.Get("RateLimit-Remaining"); got != strconv.Itoa(burst-1-i) {
					t.Errorf("request %d: RateLimit-Remaining %q, want %d", i+1, got, burst-1-i)
				}
			}
			req, _ := http.NewRequest(method, url+tt.path, nil)
			req.Header.Set("Authorization", "Bearer "+tt.token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			want429(t, resp, body, burst)
		})
	}
	// The flooded receiver's bucket is its own: another receiver's key
	// still gets its whole burst.
	for range burst {
		if resp, body := rawGet(t, url+"/v1/receivers/"+other.ID.String(), other.APIKey, ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("other receiver: %d %s", resp.StatusCode, body)
		}
	}
}

// TestRateLimitFailedAuthPerIP floods the API with made-up tokens from one
// client IP: after the burst of 401s it answers 429, even to a valid token
// from that IP (guessing stops whether or not the next guess is right),
// while other clients are unaffected. X-Forwarded-For picks the client only
// behind a trusted proxy; otherwise a flooder cannot rotate it.
func TestRateLimitFailedAuthPerIP(t *testing.T) {
	t.Parallel()
	base := newTestAPI(t)
	const burst = 3
	slow := Rate{PerSecond: 0.01, Burst: burst}
	flood := func(t *testing.T, url string, xff func(i int) string) {
		t.Helper()
		for i := range burst {
			if resp, body := rawGet(t, url+"/v1/receivers/summary", "nfy_made-up-"+strconv.Itoa(i), xff(i)); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("guess %d: %d %s, want 401", i+1, resp.StatusCode, body)
			}
		}
		resp, body := rawGet(t, url+"/v1/receivers/summary", "nfy_made-up-last", xff(burst))
		want429(t, resp, body, burst)
	}

	t.Run("direct client", func(t *testing.T) {
		_, url := base.serveWith(func(c *Config) { c.RateLimits.AuthFailures = slow })
		// Without trusted proxies a forged X-Forwarded-For changes nothing.
		flood(t, url, func(i int) string { return "198.51.100." + strconv.Itoa(i+1) })
		resp, body := rawGet(t, url+"/v1/receivers/summary", testAdminToken, "")
		want429(t, resp, body, burst)
	})
	t.Run("behind a trusted proxy", func(t *testing.T) {
		_, url := base.serveWith(func(c *Config) {
			c.RateLimits.AuthFailures = slow
			c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		})
		flood(t, url, func(int) string { return "203.0.113.7" })
		if resp, body := rawGet(t, url+"/v1/receivers/summary", testAdminToken, "203.0.113.7"); resp.StatusCode != http.StatusTooManyRequests {
			t.Errorf("valid token from the flooding IP: %d %s, want 429", resp.StatusCode, body)
		}
		if resp, body := rawGet(t, url+"/v1/receivers/summary", testAdminToken, "203.0.113.8"); resp.StatusCode != http.StatusOK {
			t.Errorf("another client behind the proxy: %d %s, want 200", resp.StatusCode, body)
		}
		// One IPv6 host holds a /64: its addresses share a bucket.
		flood(t, url, func(i int) string { return "2001:db8:1:2::" + strconv.Itoa(i+1) })
	})
}

// TestPublicPortHasNoMetricsAndReadyzNoDetail: /metrics is not served on the
// API port, and /readyz, with Redis down, says only that it is not ready.
func TestPublicPortHasNoMetricsAndReadyzNoDetail(t *testing.T) {
	t.Parallel()
	base := newTestAPI(t)
	_, url := base.serveWith(func(*Config) {})
	if resp, _ := rawGet(t, url+"/metrics", "", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("/metrics: %d, want 404", resp.StatusCode)
	}
	// Redis at a port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := ln.Addr().String()
	ln.Close()
	dead := redis.NewClient(&redis.Options{Addr: deadAddr, MaxRetries: -1})
	t.Cleanup(func() { dead.Close() })
	srv := New(base.store, dead, base.queue, Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	resp, body := rawGet(t, hs.URL+"/readyz", "", "")
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != http.StatusServiceUnavailable || len(got) != 1 || got["ready"] != false {
		t.Errorf("/readyz: %d %s, want 503 {\"ready\":false}", resp.StatusCode, body)
	}
	if port := deadAddr[strings.LastIndex(deadAddr, ":")+1:]; strings.Contains(string(body), port) || strings.Contains(string(body), "refused") {
		t.Errorf("/readyz leaks the error: %s", body)
	}
}
