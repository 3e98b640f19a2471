package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/notifyd/notifyd/internal/fleet"
)

const (
	adminToken    = "soak-admin-token"
	producerToken = "soak-producer-token"
	receiverCap   = 4
	// deliveryTimeout is NOTIFYD_DELIVERY_TIMEOUT: a worker closes an
	// attempt's connection by then.
	deliveryTimeout = 2 * time.Second
)

// member is one notifyd process of the fleet; a restart keeps its address.
type member struct {
	role  string // api, worker, scheduler, relay
	idx   int
	addr  string // NOTIFYD_HTTP_ADDR
	extra map[string]string
	proc  *fleet.Proc
}

// cluster is the soak's notifyd installation: processes of the real binary
// sharing one Postgres (through a proxy the nemesis can cut) and one Redis
// Sentinel set.
type cluster struct {
	bin, logDir string
	env         map[string]string

	mu      sync.Mutex
	members map[string][]*member
	procs   []*fleet.Proc // every process ever started, for the final stop
}

// clusterEnv is every process's environment: short schedules keep the soak
// short; the shape is the production one.
func clusterEnv(dbURL, redisURL string) map[string]string {
	return map[string]string{
		"NOTIFYD_DATABASE_URL":          dbURL + "&pool_max_conns=5",
		"NOTIFYD_REDIS_URL":             redisURL,
		"NOTIFYD_ALLOW_PRIVATE_TARGETS": "true",
		"NOTIFYD_ADMIN_TOKEN":           adminToken,
		"NOTIFYD_PRODUCER_TOKENS":       producerToken,
		"NOTIFYD_LOG_FORMAT":            "text",
		// Private targets, short tokens, no Redis password: development.
		"NOTIFYD_ENV":                  "development",
		"NOTIFYD_WORKER_CONCURRENCY":   "20",
		"NOTIFYD_RECEIVER_CONCURRENCY": strconv.Itoa(receiverCap),
		"NOTIFYD_DELIVERY_TIMEOUT":     deliveryTimeout.String(),
		"NOTIFYD_SHUTDOWN_TIMEOUT":     "5s",
		"NOTIFYD_RETRY_MAX_ATTEMPTS":   "4",
		"NOTIFYD_RETRY_BASE":           "500ms",
		"NOTIFYD_RETRY_FACTOR":         "2",
		"NOTIFYD_RETRY_MAX_INTERVAL":   "2s",
		"NOTIFYD_BREAKER_COOLDOWN":     "2s",
		"NOTIFYD_REDRIVE_SCHEDULE":     "@every 2s",
		"NOTIFYD_RETENTION_SCHEDULE":   "@every 30s",
	}
}

// add creates a member of role and starts it.
func (c *cluster) add(role string, extra map[string]string) (*member, error) {
	port, err := fleet.FreePort()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.members == nil {
		c.members = make(map[string][]*member)
	}
	m := &member{role: role, idx: len(c.members[role]), addr: "127.0.0.1:" + strconv.Itoa(port), extra: extra}
	c.members[role] = append(c.members[role], m)
	c.mu.Unlock()
	return m, c.start(m)
}

// start runs m and waits until it answers on its ops/API port.
func (c *cluster) start(m *member) error {
	// Only the API serves on NOTIFYD_HTTP_ADDR; the others answer probes on
	// their ops listener, given the same port. The API's ops listener gets
	// a free port of its own, so processes never share one.
	ops := m.addr
	if m.role == "api" {
		port, err := fleet.FreePort()
		if err != nil {
			return err
		}
		ops = "127.0.0.1:" + strconv.Itoa(port)
	}
	vars := map[string]string{"NOTIFYD_HTTP_ADDR": m.addr, "NOTIFYD_OPS_ADDR": ops}
	for k, v := range c.env {
		vars[k] = v
	}
	for k, v := range m.extra {
		vars[k] = v
	}
	env := make([]string, 0, len(vars))
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	p, err := fleet.Start(c.logDir, fmt.Sprintf("%s-%d", m.role, m.idx), env, c.bin, m.role)
	if err != nil {
		return err
	}
	c.mu.Lock()
	m.proc = p
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	probe := "/readyz"
	if m.role == "api" {
		probe = "/healthz"
	}
	// Generous: a restart during a Postgres cut or a failover waits for it.
	return fleet.WaitHTTP(p, "http://"+m.addr+probe, 60*time.Second)
}

// member returns member idx of role.
func (c *cluster) member(role string, idx int) *member {
	c.mu.Lock()
	defer c.mu.Unlock()
	ms := c.members[role]
	return ms[idx%len(ms)]
}

// stop kills every process still running.
func (c *cluster) stop() {
	c.mu.Lock()
	procs := append([]*fleet.Proc(nil), c.procs...)
	c.mu.Unlock()
	for _, p := range procs {
		p.Kill()
	}
}

// logs lists every process started so far, for their logs.
func (c *cluster) logs() []*fleet.Proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*fleet.Proc(nil), c.procs...)
}

// apiCall sends a JSON request to base and decodes a JSON answer into out.
func apiCall(ctx context.Context, hc *http.Client, method, u, token string, body, out any) (int, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, fmt.Errorf("encode: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(b))
	if err != nil {
		return 0, fmt.Errorf("request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, u, resp.StatusCode, bytes.TrimSpace(raw))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode: %w", err)
		}
	}
	return resp.StatusCode, nil
}

// hostOf is host:port of a database URL.
func hostOf(dbURL string) (string, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", fmt.Errorf("database URL: %w", err)
	}
	return u.Host, nil
}

// withHost is dbURL pointing at hostPort instead.
func withHost(dbURL, hostPort string) string {
	u, _ := url.Parse(dbURL)
	u.Host = hostPort
	return u.String()
}
