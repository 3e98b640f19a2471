package faults

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/apitest"
	"github.com/notifyd/notifyd/internal/testenv"
)

const (
	adminToken    = "faults-admin-token"
	producerToken = "faults-producer-token"
)

// cluster is one notifyd installation for one test: its own database, its
// own Redis (a shared-server index or a redis-server of its own) and any
// number of notifyd processes.
type cluster struct {
	t        *testing.T
	dbURL    string // direct to Postgres
	redisURL string
	env      map[string]string
	db       *pgxpool.Pool // the test's own view of the database
	seq      int
}

// newCluster prepares a database and the environment every process shares.
// redisURL "" means an index of the shared Redis from testenv.
func newCluster(t *testing.T, redisURL string, env map[string]string) *cluster {
	t.Helper()
	dbURL := testenv.Database(t)
	if redisURL == "" {
		opt := testenv.Redis(t)
		redisURL = fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB)
	}
	db, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	c := &cluster{t: t, dbURL: dbURL, redisURL: redisURL, db: db, env: map[string]string{
		// Small pools: several clusters of three processes share the test
		// server's 100 connections.
		"NOTIFYD_DATABASE_URL":          dbURL + "&pool_max_conns=5",
		"NOTIFYD_REDIS_URL":             redisURL,
		"NOTIFYD_ALLOW_PRIVATE_TARGETS": "true",
		// Private targets, short tokens, no Redis password: development.
		"NOTIFYD_ENV":              "development",
		"NOTIFYD_ADMIN_TOKEN":      adminToken,
		"NOTIFYD_PRODUCER_TOKENS":  producerToken,
		"NOTIFYD_LOG_FORMAT":       "text",
		"NOTIFYD_REDRIVE_SCHEDULE": "@every 2s",
		// Short schedules keep the tests short; the shape is the real one.
		"NOTIFYD_RETRY_MAX_ATTEMPTS": "4",
		"NOTIFYD_RETRY_BASE":         "1s",
		"NOTIFYD_RETRY_FACTOR":       "1",
		"NOTIFYD_RETRY_MAX_INTERVAL": "1s",
		// A flaky receiver may fail ten times in a row and open its
		// circuit; a short cool-down keeps that from stretching the test.
		"NOTIFYD_BREAKER_COOLDOWN": "2s",
	}}
	for k, v := range env {
		c.env[k] = v
	}
	return c
}

// start runs "notifyd <command>" with the cluster's environment plus extra,
// and waits until it answers. It returns the API's address for "api" and
// the ops listener's for the others, which serve only that; an API's ops
// listener gets a free port of its own, so processes never share one.
func (c *cluster) start(command string, extra map[string]string) (*proc, string) {
	c.t.Helper()
	c.seq++
	addr := "127.0.0.1:" + strconv.Itoa(freePort(c.t))
	vars := map[string]string{"NOTIFYD_HTTP_ADDR": addr, "NOTIFYD_OPS_ADDR": addr}
	if command == "api" || command == "all" {
		vars["NOTIFYD_OPS_ADDR"] = "127.0.0.1:" + strconv.Itoa(freePort(c.t))
	}
	for k, v := range c.env {
		vars[k] = v
	}
	for k, v := range extra {
		vars[k] = v
	}
	env := make([]string, 0, len(vars))
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	p := startProc(c.t, fmt.Sprintf("%s-%d", command, c.seq), env, notifydBin, command)
	probe := "/readyz"
	if command == "api" {
		probe = "/healthz"
	}
	waitHTTP(c.t, p, "http://"+addr+probe, 30*time.Second)
	return p, "http://" + addr
}

// api is a client of a running notifyd API.
type api struct {
	*apitest.Client
	t *testing.T
}

func (c *cluster) startAPI() (*proc, *api) {
	c.t.Helper()
	p, base := c.start("api", nil)
	client := apitest.NewClient(c.t, base)
	client.HTTP = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	return p, &api{Client: client, t: c.t}
}

// createReceiver registers callbackURL and returns the receiver id.
func (a *api) createReceiver(name, callbackURL string) string {
	a.t.Helper()
	var out struct{ ID string }
	code, raw, err := a.Try("POST", "/v1/receivers", adminToken, map[string]any{"name": name, "callback_url": callbackURL}, &out)
	if err != nil || code != http.StatusCreated {
		a.t.Fatalf("create receiver: %d %s %v", code, raw, err)
	}
	return out.ID
}

// createReceivers registers one receiver per endpoint of rs, "merchant-i"
// at rs.URL(i), and returns their ids in that order.
func (a *api) createReceivers(rs *receivers) []string {
	a.t.Helper()
	ids := make([]string, rs.Len())
	for i := range ids {
		ids[i] = a.createReceiver("merchant-"+strconv.Itoa(i), rs.URL(i))
	}
	return ids
}

// ingestAll sends n notifications over HTTP (Postgres first, then the
// queue), notification i to receivers[i % len(receivers)], with workers
// requests at a time, and returns their ids in order.
func (a *api) ingestAll(receivers []string, n, workers int) []string {
	a.t.Helper()
	ids := make([]string, n)
	next := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				var out struct{ ID string }
				code, raw, err := a.Try("POST", "/v1/notifications", producerToken, map[string]any{
					"receiver_id": receivers[i%len(receivers)], "event_type": "trade.paid",
					"idempotency_key": "order-" + strconv.Itoa(i), "payload": map[string]any{"i": i},
				}, &out)
				if err == nil && code != http.StatusAccepted {
					err = fmt.Errorf("ingest %d: %d %s", i, code, raw)
				}
				if err != nil {
					errs <- err
					return
				}
				ids[i] = out.ID
			}
		}()
	}
	start := time.Now()
loop:
	for i := range n {
		select {
		case next <- i:
		case err := <-errs:
			close(next)
			wg.Wait()
			a.t.Fatal(err)
			break loop
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		a.t.Fatal(err)
	default:
	}
	a.t.Logf("ingested %d notifications over HTTP in %s", n, time.Since(start).Round(time.Millisecond))
	return ids
}

// dbHostPort is host:port of the Postgres server behind dbURL.
func dbHostPort(t *testing.T, dbURL string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// withHost returns dbURL pointing at hostPort instead.
func withHost(t *testing.T, dbURL, hostPort string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = hostPort
	return u.String()
}
