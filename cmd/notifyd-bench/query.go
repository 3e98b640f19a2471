package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/tasks"
)

// QueryResult is scenario 6.
type QueryResult struct {
	Rows            int64   `json:"rows"`
	Receivers       int     `json:"receivers"`
	Reused          bool    `json:"reused_database"`
	GenerateSeconds float64 `json:"generate_seconds"`
	// Missing lists routes the API does not serve (scenario skipped for them).
	Missing []string `json:"missing_routes"`
	// A page of 50 from a random point of a receiver's history
	// (created_after), following next_cursor for up to 20 pages.
	ListOne    *LoadResult `json:"list_1_conn"`
	ListLoaded *LoadResult `json:"list_loaded"`
	// GET /v1/notifications/by-key/{key}, random keys.
	ByKeyOne    *LoadResult `json:"by_key_1_conn"`
	ByKeyLoaded *LoadResult `json:"by_key_loaded"`
	CPU         *CPUSplit   `json:"cpu_list_loaded"`
	// Console is the web console's pages (console.go); nil when skipped.
	Console *ConsoleResult `json:"console"`
	// Profile is the API process's CPU profile (--cpuprofile), covering
	// every load run.
	Profile string `json:"cpuprofile,omitempty"`
}

const pageSize = 50

// Generated rows: created_at spreads evenly over this window before the
// generation time, receiver by receiver in turn.
const historyWindow = 30 * 24 * time.Hour

func (b *bench) queryDBName() string {
	if b.cfg.queryDB != "" {
		return b.cfg.queryDB
	}
	return b.dbName + "_q"
}

type queryData struct {
	receivers []benchReceiver
	rows      int64
	from, to  time.Time // created_at range
}

func (b *bench) query(ctx context.Context) error {
	cfg := b.cfg
	name := b.queryDBName()
	r := &QueryResult{Receivers: cfg.queryReceivers, Missing: []string{}}
	b.res.Query = r
	dbURL, data, err := b.prepareQueryDB(ctx, name, r)
	if cfg.queryDB == "" && !cfg.keep {
		defer func() {
			if err := dropDatabase(cfg.databaseURL, name); err != nil {
				b.prog.note(fmt.Sprintf("could not drop %s: %v", name, err))
			}
		}()
	}
	if err != nil {
		return err
	}
	c, err := b.startChild(ctx, "notifyd", b.queryAPIArgs(dbURL, r)...)
	if err != nil {
		return err
	}
	defer func() { b.stopChild(c) }()
	hasList, hasByKey, err := b.probeQuery(ctx, dbURL, c.ready["api"], data, r)
	if err != nil {
		return err
	}
	if !hasList && !hasByKey {
		b.prog.done("query: route missing: neither list nor by-key is served by this build; skipped")
		b.rows = append(b.rows, row{"6 query", "route missing: " + strings.Join(r.Missing, ", ") + "; skipped", "p99 ≤ 10 ms", "-"})
		return nil
	}
	if data.rows == 0 {
		b.stopChild(c)
		t0 := time.Now()
		if data, err = b.generate(ctx, dbURL, data.receivers); err != nil {
			return err
		}
		r.GenerateSeconds = round(time.Since(t0).Seconds(), 1)
		// A fresh API process: no statement plans cached from the empty table.
		if c, err = b.startChild(ctx, "notifyd", b.queryAPIArgs(dbURL, r)...); err != nil {
			return err
		}
	}
	r.Rows = data.rows
	b.queryLoad(ctx, c.ready["api"], data, r, hasList, hasByKey)
	b.queryRows(r)
	return nil
}

// probeQuery tells whether this build serves the list and by-key routes
// (they may not exist yet in it), noting the missing ones in r. An empty
// database gets a probe notification for the time of the probe.
func (b *bench) probeQuery(ctx context.Context, dbURL, api string, data *queryData, r *QueryResult) (hasList, hasByKey bool, err error) {
	probeKey := "q-0"
	if data.rows == 0 {
		st, err := store.Open(ctx, dbURL)
		if err != nil {
			return false, false, err
		}
		defer st.Close()
		probeKey = "probe"
		probe := store.NewNotification{ID: tasks.NotificationID(data.receivers[0].ID, probeKey), ReceiverID: data.receivers[0].ID,
			EventType: eventType, IdempotencyKey: probeKey, Payload: []byte(`{}`), MaxAttempts: 1}
		if _, _, err := st.InsertNotification(ctx, probe); err != nil {
			return false, false, err
		}
		defer func() {
			if _, derr := st.Pool().Exec(ctx, `DELETE FROM notifications WHERE idempotency_key = 'probe'`); err == nil {
				err = derr
			}
		}()
	}
	if hasList, hasByKey, err = b.probeRoutes(api, data.receivers[0].APIKey, probeKey); err != nil {
		return false, false, err
	}
	if !hasList {
		r.Missing = append(r.Missing, "GET /v1/notifications (list)")
	}
	if !hasByKey {
		r.Missing = append(r.Missing, "GET /v1/notifications/by-key/{key}")
	}
	return hasList, hasByKey, nil
}

// queryLoad runs the closed-loop loads of the routes this build serves.
func (b *bench) queryLoad(ctx context.Context, api string, data *queryData, r *QueryResult, hasList, hasByKey bool) {
	cfg := b.cfg
	perReceiver := data.rows / int64(len(data.receivers))
	list := func(state *listState, rng *rand.Rand, client *http.Client) (int, error) {
		return b.listPage(api, data, state, rng, client)
	}
	byKey := func(_ *listState, rng *rand.Rand, client *http.Client) (int, error) {
		rc := data.receivers[rng.IntN(len(data.receivers))]
		key := "q-" + strconv.FormatInt(rng.Int64N(perReceiver), 10)
		return 0, get(client, api+"/v1/notifications/by-key/"+url.PathEscape(key), rc.APIKey, nil)
	}
	if hasList {
		r.ListOne = b.load(ctx, "query list, 1 conn", 1, cfg.queryDuration, list)
		before := b.sampler.snapshot()
		r.ListLoaded = b.load(ctx, fmt.Sprintf("query list, %d conns", cfg.queryConns), cfg.queryConns, cfg.queryDuration, list)
		r.CPU = cpuDelta(before, b.sampler.snapshot())
	}
	if hasByKey {
		r.ByKeyOne = b.load(ctx, "query by-key, 1 conn", 1, cfg.queryDuration, byKey)
		r.ByKeyLoaded = b.load(ctx, fmt.Sprintf("query by-key, %d conns", cfg.queryConns), cfg.queryConns, cfg.queryDuration, byKey)
	}
	r.Console = b.consoleLoad(ctx, api, data)
}

// queryAPIArgs are the arguments of the query run's API process. With
// --cpuprofile it profiles itself into the path plus ".query" (the
// throughput run's worker writes the path itself); the API process started
// after generating rows overwrites the one started before.
func (b *bench) queryAPIArgs(dbURL string, r *QueryResult) []string {
	args := []string{"-worker=false", "-api", "-admin-token", consoleAdminToken}
	if b.cfg.cpuprofile != "" {
		r.Profile = b.cfg.cpuprofile + ".query"
		args = append(args, "-cpuprofile", r.Profile)
	}
	return b.notifydArgs(dbURL, args...)
}

func (b *bench) queryRows(r *QueryResult) {
	on := fmt.Sprintf("on %s rows", thousands(r.Rows))
	add := func(label, targetName string, lr *LoadResult, judged bool) {
		if lr == nil {
			return
		}
		fig := fmt.Sprintf("%s, %d conn: %s req/s, %s", label, lr.Conns, thousands(int64(lr.PerSecond)), lr.Latency)
		if lr.Errors > 0 {
			fig += fmt.Sprintf(", %d errors (%s)", lr.Errors, lr.FirstErr)
		}
		met, text := verdict(lr.Latency.P99, targetQueryP99MS, false)
		if lr.Requests == 0 || lr.Errors*100 > lr.Requests {
			met, text = false, "invalid: too many errors"
		}
		target := "p99 ≤ 10 ms"
		if !judged {
			target = "(p99 ≤ 10 ms)"
		}
		if targetName != "" {
			b.target(targetName, met, text)
		}
		b.rows = append(b.rows, row{"6 query", fig, target, text})
	}
	add("list page of 50 "+on, "query_list_p99_1_conn", r.ListOne, true)
	add("list page of 50 "+on, "query_list_p99_loaded", r.ListLoaded, true)
	add("by-key "+on, "", r.ByKeyOne, false)
	add("by-key "+on, "", r.ByKeyLoaded, false)
	if r.CPU != nil {
		b.rows = append(b.rows, row{"  cpu (list, loaded)", strings.Replace(r.CPU.String(), "notifyd", "notifyd api", 1) + "; bench = the load generator", "", ""})
	}
	b.consoleRows(r.Console, on)
	for _, m := range r.Missing {
		b.rows = append(b.rows, row{"6 query", "route missing: " + m, "", "-"})
	}
}

// probeRoutes tells whether this build serves the list and by-key routes.
func (b *bench) probeRoutes(api, apiKey, key string) (list, byKey bool, err error) {
	status := func(path string) (int, error) {
		resp, err := authGet(b.http, api+path, apiKey)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	code, err := status("/v1/notifications?limit=1")
	if err != nil {
		return false, false, err
	}
	list = code == http.StatusOK
	code, err = status("/v1/notifications/by-key/" + url.PathEscape(key))
	if err != nil {
		return false, false, err
	}
	byKey = code == http.StatusOK
	return list, byKey, nil
}
