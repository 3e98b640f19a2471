package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/tasks"
	"github.com/notifyd/notifyd/migrations"
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
	// Profile is the API process's CPU profile (--cpuprofile), covering
	// every load run.
	Profile string `json:"cpuprofile,omitempty"`
}

// LoadResult is one closed-loop load run.
type LoadResult struct {
	Conns     int     `json:"conns"`
	Seconds   float64 `json:"seconds"`
	Requests  int64   `json:"requests"`
	Errors    int64   `json:"errors"`
	FirstErr  string  `json:"first_error,omitempty"`
	PerSecond float64 `json:"req_per_s"`
	Latency   Dist    `json:"latency"`
	// RowsPerPage is the mean page size of list requests.
	RowsPerPage float64 `json:"rows_per_page,omitempty"`
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
	st, err := store.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	defer st.Close()

	c, err := b.startChild(ctx, "notifyd", b.queryAPIArgs(dbURL, r)...)
	if err != nil {
		return err
	}
	defer b.stopChild(c)
	api := c.ready["api"]

	// Probe the routes (they may not exist yet in this build).
	if data.rows == 0 {
		probe := store.NewNotification{ID: tasks.NotificationID(data.receivers[0].ID, "probe"), ReceiverID: data.receivers[0].ID,
			EventType: eventType, IdempotencyKey: "probe", Payload: []byte(`{}`), MaxAttempts: 1}
		if _, _, err := st.InsertNotification(ctx, probe); err != nil {
			return err
		}
	}
	probeKey := "probe"
	if data.rows > 0 {
		probeKey = "q-0"
	}
	hasList, hasByKey, err := b.probeRoutes(api, data.receivers[0].APIKey, probeKey)
	if err != nil {
		return err
	}
	if !hasList {
		r.Missing = append(r.Missing, "GET /v1/notifications (list)")
	}
	if !hasByKey {
		r.Missing = append(r.Missing, "GET /v1/notifications/by-key/{key}")
	}
	if !hasList && !hasByKey {
		b.prog.done("query: route missing: neither list nor by-key is served by this build; skipped")
		b.rows = append(b.rows, row{"6 query", "route missing: " + strings.Join(r.Missing, ", ") + "; skipped", "p99 ≤ 10 ms", "-"})
		return nil
	}
	if data.rows == 0 {
		if _, err := st.Pool().Exec(ctx, `DELETE FROM notifications WHERE idempotency_key = 'probe'`); err != nil {
			return err
		}
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
		defer b.stopChild(c)
		api = c.ready["api"]
	}
	r.Rows = data.rows

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
	b.queryRows(r)
	return nil
}

// queryAPIArgs are the arguments of the query run's API process. With
// --cpuprofile it profiles itself into the path plus ".query" (the
// throughput run's worker writes the path itself); the API process started
// after generating rows overwrites the one started before.
func (b *bench) queryAPIArgs(dbURL string, r *QueryResult) []string {
	args := []string{"-worker=false", "-api"}
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
	for _, m := range r.Missing {
		b.rows = append(b.rows, row{"6 query", "route missing: " + m, "", "-"})
	}
}

// probeRoutes tells whether this build serves the list and by-key routes.
func (b *bench) probeRoutes(api, apiKey, key string) (list, byKey bool, err error) {
	status := func(path string) (int, error) {
		req, _ := http.NewRequest(http.MethodGet, api+path, nil)
		req.Header.Set("Authorization", "Bearer "+apiKey)
		resp, err := b.http.Do(req)
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

// listState is one load goroutine's position in a listing.
type listState struct {
	receiver int
	cursor   string
	pages    int
	body     []byte // reused for every page
}

func (b *bench) listPage(api string, data *queryData, s *listState, rng *rand.Rand, client *http.Client) (int, error) {
	// Oldest first, as a reconciliation job reads; the cursor carries the
	// order, so every page of a listing asks for the same one.
	q := url.Values{"limit": {strconv.Itoa(pageSize)}, "order": {"asc"}}
	if s.cursor == "" || s.pages >= 20 {
		// Start at a random point of a random receiver's history, as a job
		// asking for "since yesterday" does.
		s.receiver = rng.IntN(len(data.receivers))
		at := data.from.Add(time.Duration(rng.Int64N(int64(data.to.Sub(data.from)))))
		q.Set("created_after", at.UTC().Format(time.RFC3339Nano))
		s.pages = 0
	} else {
		q.Set("cursor", s.cursor)
	}
	err := get(client, api+"/v1/notifications?"+q.Encode(), data.receivers[s.receiver].APIKey, &s.body)
	var rows int
	if err == nil {
		rows, s.cursor, err = pageSummary(s.body)
	}
	if err != nil {
		s.cursor = ""
		return 0, err
	}
	s.pages++
	return rows, nil
}

// pageSummary reads what the load generator needs from a listing page: the
// number of rows and next_cursor ("" on the last page). It walks the data
// array without decoding the rows: decoding whole pages with encoding/json
// cost the generator more CPU than the API spent producing them, on the
// same two cores, so the figures measured the generator as much as the
// API. The whole answer is still read; the API's tests check what is in
// it.
func pageSummary(b []byte) (rows int, next string, err error) {
	const head = `{"data":[`
	if !bytes.HasPrefix(b, []byte(head)) {
		return 0, "", fmt.Errorf("page does not start with %s: %.80q", head, b)
	}
	i, depth := len(head), 1 // inside the data array
	for depth > 0 {
		if i >= len(b) {
			return 0, "", errors.New("page ends inside its data")
		}
		switch b[i] {
		case '"':
			// Skip the string: its end is the first quote not escaped by
			// an odd number of backslashes.
			for i++; ; i++ {
				j := bytes.IndexByte(b[i:], '"')
				if j < 0 {
					return 0, "", errors.New("page ends inside a string")
				}
				i += j
				k := i
				for b[k-1] == '\\' {
					k--
				}
				if (i-k)%2 == 0 {
					break
				}
			}
		case '{', '[':
			if depth == 1 {
				rows++
			}
			depth++
		case '}', ']':
			depth--
		}
		i++
	}
	if i >= len(b) || b[i] != ',' {
		return 0, "", fmt.Errorf("no fields after data: %.80q", b[i:])
	}
	var tail struct {
		NextCursor *string `json:"next_cursor"`
		HasMore    *bool   `json:"has_more"`
	}
	rest := append([]byte{'{'}, b[i+1:]...)
	if err := json.Unmarshal(rest, &tail); err != nil || tail.HasMore == nil || *tail.HasMore != (tail.NextCursor != nil) {
		return 0, "", fmt.Errorf("bad page end %.80q: %v", rest, err)
	}
	if tail.NextCursor != nil {
		next = *tail.NextCursor
	}
	return rows, next, nil
}

// get requests url with a bearer token and reads a 200 answer into *body
// (nil: discard).
func get(client *http.Client, u, token string, body *[]byte) error {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if body == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	buf := bytes.NewBuffer((*body)[:0])
	_, err = buf.ReadFrom(resp.Body)
	*body = buf.Bytes()
	return err
}

// load runs conns goroutines in a closed loop (each sends its next request
// when the previous answer is read) for d, over keep-alive connections.
func (b *bench) load(ctx context.Context, label string, conns int, d time.Duration,
	do func(s *listState, rng *rand.Rand, client *http.Client) (int, error)) *LoadResult {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true,
	}}
	defer client.CloseIdleConnections()
	var reqs, errs, rows atomic.Int64
	var firstErr atomic.Value
	lat := make([][]time.Duration, conns)
	start := time.Now()
	stop := start.Add(d)
	var wg sync.WaitGroup
	for w := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w)+1, uint64(start.UnixNano())))
			s := &listState{}
			for time.Now().Before(stop) && ctx.Err() == nil {
				t := time.Now()
				n, err := do(s, rng, client)
				lat[w] = append(lat[w], time.Since(t))
				reqs.Add(1)
				rows.Add(int64(n))
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case <-done:
			break wait
		case <-tick.C:
			el := time.Since(start).Seconds()
			b.prog.update("%s: %.0f/%.0f s, %s requests, %s", label, el, d.Seconds(), thousands(reqs.Load()), fmtRate(float64(reqs.Load())/el))
		}
	}
	secs := time.Since(start).Seconds()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	r := &LoadResult{Conns: conns, Seconds: round(secs, 2), Requests: reqs.Load(), Errors: errs.Load(),
		PerSecond: round(float64(reqs.Load())/secs, 1), Latency: distOf(all)}
	if v, ok := firstErr.Load().(string); ok {
		r.FirstErr = firstLine(v)
	}
	if n := reqs.Load() - errs.Load(); n > 0 && rows.Load() > 0 {
		r.RowsPerPage = round(float64(rows.Load())/float64(n), 1)
	}
	b.prog.done("%s: %s req/s, %s", label, thousands(int64(r.PerSecond)), r.Latency)
	return r
}

// ---------------------------------------------------------------- generator

// prepareQueryDB creates (or reuses, with --query-db) the query database and
// its receivers. data.rows is 0 when rows must still be generated.
func (b *bench) prepareQueryDB(ctx context.Context, name string, r *QueryResult) (string, *queryData, error) {
	cfg := b.cfg
	data := &queryData{}
	exists := false
	if cfg.queryDB != "" {
		var err error
		if exists, err = databaseExists(ctx, cfg.databaseURL, name); err != nil {
			return "", nil, err
		}
	}
	var dbURL string
	var err error
	if exists {
		if dbURL, err = withDatabase(cfg.databaseURL, name); err != nil {
			return "", nil, err
		}
		if err := migrations.UpQuiet(ctx, plainURL(dbURL)); err != nil {
			return "", nil, err
		}
		reused, err := b.reuseQueryData(ctx, dbURL)
		if err != nil {
			return "", nil, err
		}
		if reused != nil {
			b.prog.note(fmt.Sprintf("query: reusing %s rows in database %s", thousands(reused.rows), name))
			r.Reused = true
			return dbURL, reused, nil
		}
		b.prog.note(fmt.Sprintf("query: database %s does not hold %s generated rows; recreating it", name, thousands(int64(cfg.queryRows))))
	}
	if dbURL, err = createDatabase(ctx, cfg.databaseURL, name); err != nil {
		return "", nil, err
	}
	st, err := store.Open(ctx, dbURL)
	if err != nil {
		return "", nil, err
	}
	defer st.Close()
	var specs []receiverSpec
	for i := range cfg.queryReceivers {
		specs = append(specs, receiverSpec{name: fmt.Sprintf("query-%03d", i), url: "http://127.0.0.1:9/unused"})
	}
	if data.receivers, err = createReceivers(ctx, st, specs); err != nil {
		return "", nil, err
	}
	return dbURL, data, nil
}

// reuseQueryData checks a kept query database and gives its receivers fresh
// API keys (only hashes are stored). nil when it does not match the flags.
func (b *bench) reuseQueryData(ctx context.Context, dbURL string) (*queryData, error) {
	conn, err := connect(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	var count int64
	var from, to *time.Time
	if err := conn.QueryRow(ctx, `SELECT count(*), min(created_at), max(created_at) FROM notifications`).Scan(&count, &from, &to); err != nil {
		return nil, err
	}
	rows, err := conn.Query(ctx, `SELECT id FROM receivers WHERE name LIKE 'query-%' ORDER BY name`)
	if err != nil {
		return nil, err
	}
	recvIDs, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, err
	}
	if count != int64(b.cfg.queryRows) || len(recvIDs) != b.cfg.queryReceivers || from == nil {
		return nil, nil
	}
	data := &queryData{rows: count, from: *from, to: *to}
	for _, id := range recvIDs {
		key := newAPIKey()
		if _, err := conn.Exec(ctx, `UPDATE receivers SET api_key_hash = $2 WHERE id = $1`, id, store.HashAPIKey(key)); err != nil {
			return nil, err
		}
		data.receivers = append(data.receivers, benchReceiver{ID: id, APIKey: key})
	}
	return data, nil
}

// keyDef is a constraint or index to drop for the bulk load and recreate
// after it, exactly as the migrations defined it.
type keyDef struct {
	table, name, def, kind string // kind: p, u, f (constraints) or i (index)
}

// generate fills the query database with COPY: indexes and constraints
// are dropped first and rebuilt afterwards (far faster than maintaining
// them row by row), then the tables are vacuumed and analysed.
func (b *bench) generate(ctx context.Context, dbURL string, receivers []benchReceiver) (*queryData, error) {
	cfg := b.cfg
	conn, err := connect(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	defs, err := dropKeys(ctx, conn)
	if err != nil {
		return nil, err
	}
	to := time.Now().Add(-time.Hour).Truncate(time.Second)
	data := &queryData{receivers: receivers, rows: int64(cfg.queryRows), from: to.Add(-historyWindow), to: to}
	step := historyWindow / time.Duration(cfg.queryRows)

	const streams = 2
	var done atomic.Int64
	start := time.Now()
	run := func(table string, columns []string, rowsOf func(i int, emit func([]any))) error {
		done.Store(0)
		var wg sync.WaitGroup
		errc := make(chan error, streams)
		for s := range streams {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := connect(ctx, dbURL)
				if err != nil {
					errc <- err
					return
				}
				defer c.Close(context.Background())
				if err := registerEnums(ctx, c); err != nil {
					errc <- err
					return
				}
				i := s
				var buf [][]any
				src := pgx.CopyFromFunc(func() ([]any, error) {
					for len(buf) == 0 {
						if i >= cfg.queryRows {
							return nil, nil
						}
						rowsOf(i, func(v []any) { buf = append(buf, v) })
						i += streams
						if done.Add(1)%50000 == 0 {
							el := time.Since(start).Seconds()
							b.prog.update("query: generating %s: %s/%s notifications (%s)", table, thousands(done.Load()), thousands(int64(cfg.queryRows)), fmtRate(float64(done.Load())/el))
						}
					}
					v := buf[0]
					buf = buf[1:]
					return v, nil
				})
				if _, err := c.CopyFrom(ctx, pgx.Identifier{table}, columns, src); err != nil {
					errc <- fmt.Errorf("copy %s: %w", table, err)
				}
			}()
		}
		wg.Wait()
		close(errc)
		return <-errc
	}
	now := time.Now()
	gen := func(i int) (uuid.UUID, time.Time, int) {
		rc := receivers[i%len(receivers)]
		key := "q-" + strconv.Itoa(i/len(receivers))
		return tasks.NotificationID(rc.ID, key), data.from.Add(time.Duration(i) * step), i % 100
	}
	err = run("notifications", []string{"id", "receiver_id", "event_type", "idempotency_key", "payload", "status", "attempts",
		"max_attempts", "created_at", "next_attempt_at", "last_attempt_at", "delivered_at", "last_status_code", "last_error"},
		func(i int, emit func([]any)) {
			id, created, kind := gen(i)
			rc := receivers[i%len(receivers)]
			key := "q-" + strconv.Itoa(i/len(receivers))
			last := created.Add(20 * time.Millisecond)
			switch {
			case kind < 97: // delivered at the first attempt
				emit([]any{id, rc.ID, eventType, key, b.payload(i), "delivered", int16(1), int16(12), created, nil, last, last.Add(5 * time.Millisecond), int16(200), nil})
			case kind < 99: // failed after 3 attempts
				emit([]any{id, rc.ID, eventType, key, b.payload(i), "failed", int16(3), int16(3), created, nil, last.Add(time.Hour), nil, int16(500), "HTTP 500"})
			default: // pending, retry due in an hour
				emit([]any{id, rc.ID, eventType, key, b.payload(i), "pending", int16(1), int16(12), created, now.Add(time.Hour), last, nil, int16(500), "HTTP 500"})
			}
		})
	if err != nil {
		return nil, err
	}
	err = run("delivery_attempts", []string{"notification_id", "attempt_no", "started_at", "duration_ms", "status_code", "outcome", "error", "response_body"},
		func(i int, emit func([]any)) {
			id, created, kind := gen(i)
			at := created.Add(20 * time.Millisecond)
			switch {
			case kind < 97:
				emit([]any{id, int16(1), at, int32(5), int16(200), "success", nil, "ok"})
			case kind < 99:
				for a := range 3 {
					emit([]any{id, int16(a + 1), at.Add(time.Duration(a) * 30 * time.Minute), int32(8), int16(500), "failure", "HTTP 500", "oops"})
				}
			default:
				emit([]any{id, int16(1), at, int32(8), int16(500), "failure", "HTTP 500", "oops"})
			}
		})
	if err != nil {
		return nil, err
	}
	b.prog.done("query: copied %s notifications and their attempts in %.0f s", thousands(int64(cfg.queryRows)), time.Since(start).Seconds())
	if err := restoreKeys(ctx, conn, defs, b.prog); err != nil {
		return nil, err
	}
	b.prog.update("query: VACUUM ANALYZE")
	for _, t := range []string{"notifications", "delivery_attempts"} {
		if _, err := conn.Exec(ctx, `VACUUM (ANALYZE) `+t); err != nil {
			return nil, err
		}
	}
	b.prog.done("query: %s rows ready after %.0f s", thousands(int64(cfg.queryRows)), time.Since(start).Seconds())
	return data, nil
}

func registerEnums(ctx context.Context, c *pgx.Conn) error {
	for _, name := range []string{"notification_status", "attempt_outcome"} {
		t, err := c.LoadType(ctx, name)
		if err != nil {
			return fmt.Errorf("load type %s: %w", name, err)
		}
		c.TypeMap().RegisterType(t)
	}
	return nil
}

var keyTables = []string{"notifications", "delivery_attempts"}

func dropKeys(ctx context.Context, conn *pgx.Conn) ([]keyDef, error) {
	var defs []keyDef
	rows, err := conn.Query(ctx, `
		SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), contype::text
		FROM pg_constraint
		WHERE (conrelid = ANY($1::regclass[]) AND contype IN ('p', 'u', 'f'))
		   OR (confrelid = ANY($1::regclass[]) AND contype = 'f')`, keyTables)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var d keyDef
		if err := rows.Scan(&d.table, &d.name, &d.def, &d.kind); err != nil {
			rows.Close()
			return nil, err
		}
		defs = append(defs, d)
	}
	rows.Close()
	rows, err = conn.Query(ctx, `
		SELECT indrelid::regclass::text, indexrelid::regclass::text, pg_get_indexdef(indexrelid)
		FROM pg_index i
		WHERE indrelid = ANY($1::regclass[])
		  AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.contype IN ('p', 'u', 'x'))`, keyTables)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		d := keyDef{kind: "i"}
		if err := rows.Scan(&d.table, &d.name, &d.def); err != nil {
			rows.Close()
			return nil, err
		}
		defs = append(defs, d)
	}
	rows.Close()
	// Foreign keys first (they depend on the keys), then keys, then indexes.
	for _, kind := range []string{"f", "u", "p", "i"} {
		for _, d := range defs {
			if d.kind != kind {
				continue
			}
			var sql string
			if kind == "i" {
				sql = `DROP INDEX ` + d.name
			} else {
				sql = `ALTER TABLE ` + d.table + ` DROP CONSTRAINT ` + pgx.Identifier{d.name}.Sanitize()
			}
			if _, err := conn.Exec(ctx, sql); err != nil {
				return nil, fmt.Errorf("%s: %w", sql, err)
			}
		}
	}
	return defs, nil
}

func restoreKeys(ctx context.Context, conn *pgx.Conn, defs []keyDef, prog *progress) error {
	if _, err := conn.Exec(ctx, `SET maintenance_work_mem = '512MB'`); err != nil {
		return err
	}
	n := 0
	for _, kind := range []string{"p", "u", "i", "f"} {
		for _, d := range defs {
			if d.kind != kind {
				continue
			}
			n++
			prog.step("query: rebuilding %s (%d of %d)", d.name, n, len(defs))
			var sql string
			if kind == "i" {
				sql = d.def
			} else {
				sql = `ALTER TABLE ` + d.table + ` ADD CONSTRAINT ` + pgx.Identifier{d.name}.Sanitize() + ` ` + d.def
			}
			if _, err := conn.Exec(ctx, sql); err != nil {
				return fmt.Errorf("%s: %w", sql, err)
			}
		}
	}
	if n != len(defs) {
		return errors.New("not every index was rebuilt")
	}
	return nil
}
