package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/fleet"
	"github.com/notifyd/notifyd/internal/testenv"
	"github.com/notifyd/notifyd/notifier"
	"github.com/notifyd/notifyd/query/webhook"
)

// config is one soak run.
type config struct {
	Duration time.Duration // of the load and the faults
	Seed     uint64
	Rate     int           // notifications per second, all paths together
	Drain    time.Duration // at most, after the load, for everything to become terminal
	Bin      string        // the notifyd binary
	Out      io.Writer     // progress and report
	// Started, if set, is called with notifyd's database URL once the load
	// runs (a test uses it to break a promise from outside).
	Started func(dbURL string)
}

// result is what a run found.
type result struct {
	Report    *Report
	Accepted  map[string]int // path → notifications accepted
	Faults    map[string]int // kind → performed
	Harness   []string       // faults the harness could not perform
	Seen      int            // requests the receivers saw
	Abandoned int            // sends never acknowledged (retrying stopped)
	Logs      string         // where the processes' logs are
}

// receiverKinds is how each receiver behaves, by index.
var receiverKinds = []string{"healthy", "healthy", "healthy", "flaky", "flaky", "slow", "slow", "hanging", "gone", "redirect", "healthy", "flaky"}

// behaviour answers by kind; the answer depends only on (seed, id, attempt).
func behaviour(seed uint32) fleet.Behaviour {
	return func(idx int, id string, attempt int) (time.Duration, int) {
		roll := func(salt string) uint32 { return fleet.Roll(seed, salt, id, attempt) }
		delay := time.Duration(10+roll("delay")%90) * time.Millisecond
		switch receiverKinds[idx] {
		case "flaky":
			if roll("flaky")%2 == 0 {
				return delay, 500
			}
		case "slow":
			return time.Duration(800+roll("slow")%1000) * time.Millisecond, 200 // near the 2 s timeout
		case "hanging":
			if roll("hang")%4 == 0 {
				return time.Minute, 200
			}
		case "gone":
			if roll("gone")%3 == 0 {
				return delay, 410
			}
		case "redirect":
			if roll("redirect")%3 == 0 {
				return delay, 302
			}
		}
		return delay, 200
	}
}

// env is the run's surroundings, torn down by close.
type env struct {
	tb       *testenv.ExampleTB
	logDir   string
	sentinel *fleet.Sentinel
	proxy    *fleet.Proxy
	rs       *fleet.Receivers
	c        *cluster
	db       *pgxpool.Pool // notifyd's database, direct
	outbox   *pgxpool.Pool // the producer's database
	dbURL    string
}

func (e *env) close() {
	if e.c != nil {
		e.c.stop()
	}
	if e.rs != nil {
		e.rs.Close()
	}
	if e.proxy != nil {
		e.proxy.Close()
	}
	if e.sentinel != nil {
		e.sentinel.Stop()
	}
	for _, p := range []*pgxpool.Pool{e.db, e.outbox} {
		if p != nil {
			p.Close()
		}
	}
	e.tb.Close() // drops the databases
}

// setUp starts Postgres databases, the Sentinel set, the proxy, the
// receivers and the fleet, and registers the receivers.
func setUp(ctx context.Context, cfg config, e *env) (ids []string, err error) {
	defer func() {
		if r := recover(); r != nil { // testenv reports through panics outside tests
			err = fmt.Errorf("set-up: %v", r)
		}
	}()
	e.dbURL = testenv.Database(e.tb)
	outboxURL := testenv.Database(e.tb)
	if e.db, err = pgxpool.New(ctx, e.dbURL); err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	if e.outbox, err = pgxpool.New(ctx, outboxURL+"&pool_max_conns=8"); err != nil {
		return nil, fmt.Errorf("outbox database: %w", err)
	}
	if err := notifier.MigrateOutbox(ctx, e.outbox, ""); err != nil {
		return nil, fmt.Errorf("outbox table: %w", err)
	}
	if e.sentinel, err = fleet.StartSentinel(e.logDir, true); err != nil {
		return nil, fmt.Errorf("sentinel: %w", err)
	}
	host, err := hostOf(e.dbURL)
	if err != nil {
		return nil, err
	}
	if e.proxy, err = fleet.NewProxy(host); err != nil {
		return nil, err
	}
	if e.rs, err = fleet.NewReceivers(len(receiverKinds), behaviour(uint32(cfg.Seed))); err != nil {
		return nil, err
	}
	var vmu sync.Mutex
	verifiers := make(map[int]*webhook.Verifier)
	e.rs.Verify = func(idx int, h http.Header, body []byte) error {
		vmu.Lock()
		v := verifiers[idx]
		vmu.Unlock()
		if v == nil {
			return fmt.Errorf("receiver %d has no secret", idx)
		}
		_, err := v.VerifyBody(h, body)
		return err
	}
	e.c = &cluster{bin: cfg.Bin, logDir: e.logDir, env: clusterEnv(withHost(e.dbURL, e.proxy.Addr()), e.sentinel.URL())}
	for range 2 {
		if _, err := e.c.add("api", nil); err != nil {
			return nil, err
		}
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	for i, kind := range receiverKinds {
		var out struct {
			ID            string `json:"id"`
			SigningSecret string `json:"signing_secret"`
		}
		_, err := apiCall(ctx, hc, "POST", "http://"+e.c.member("api", 0).addr+"/v1/receivers", adminToken,
			map[string]any{"name": kind + "-" + strconv.Itoa(i), "callback_url": e.rs.URL(i)}, &out)
		if err != nil {
			return nil, fmt.Errorf("create receiver: %w", err)
		}
		v, err := webhook.NewVerifier(out.SigningSecret)
		if err != nil {
			return nil, fmt.Errorf("receiver %d secret: %w", i, err)
		}
		vmu.Lock()
		verifiers[i] = v
		vmu.Unlock()
		ids = append(ids, out.ID)
	}
	for role, n := range map[string]int{"scheduler": 2, "worker": 3} {
		for range n {
			if _, err := e.c.add(role, nil); err != nil {
				return nil, err
			}
		}
	}
	_, err = e.c.add("relay", map[string]string{"NOTIFYD_OUTBOX_DATABASE_URL": outboxURL + "&pool_max_conns=4", "NOTIFYD_RELAY_REPLICA_ACK": "1"})
	return ids, err
}

// run performs one soak: set-up, load under faults, drain, check.
func run(ctx context.Context, cfg config) (*result, error) {
	logDir, err := os.MkdirTemp("", "notifyd-soak-")
	if err != nil {
		return nil, fmt.Errorf("log dir: %w", err)
	}
	e := &env{tb: testenv.NewExampleTB("soak"), logDir: logDir}
	defer e.close()
	out := cfg.Out
	logf := func(format string, args ...any) {
		fmt.Fprintf(out, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	receiverIDs, err := setUp(ctx, cfg, e)
	if err != nil {
		return &result{Logs: logDir}, err
	}
	goClient, err := notifier.NewFromURL(e.sentinel.URL(), notifier.WithAllowPrivateTargets(true))
	if err != nil {
		return nil, fmt.Errorf("go client: %w", err)
	}
	defer goClient.Close()
	p := &producers{receivers: receiverIDs, rate: cfg.Rate, giveUp: 60 * time.Second, send: map[string]sendFunc{
		"go": goClient.Notify, "http": httpSend(e.c), "outbox": outboxSend(goClient, e.outbox),
	}}
	n := &nemesis{c: e.c, sentinel: e.sentinel, proxy: e.proxy, rs: e.rs, logf: logf, done: make(map[string]int)}
	plan := Plan(cfg.Seed, cfg.Duration, len(receiverKinds))
	logf("fleet up (2 api, 3 worker, 2 scheduler, 1 relay; Sentinel with AOF; logs in %s); %d faults planned over %s at %d notifications/s",
		logDir, len(plan), cfg.Duration, cfg.Rate)
	if cfg.Started != nil {
		cfg.Started(e.dbURL)
	}
	start := time.Now()
	loadCtx, stopLoad := context.WithTimeout(ctx, cfg.Duration)
	defer stopLoad()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.run(loadCtx) }()
	go func() { defer wg.Done(); n.run(loadCtx, start, plan) }()
	stopProgress := make(chan struct{})
	var progressDone sync.WaitGroup
	progressDone.Add(1)
	go func() {
		defer progressDone.Done()
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
			}
			d, f, pend, err := progress(ctx, e.db)
			_, faults := n.counts()
			logf("elapsed %s  sent %d  delivered %d  failed %d  pending %d  retried sends %d  faults %d  receiver requests %d %v",
				time.Since(start).Round(time.Second), p.sent.Load(), d, f, pend, p.retries.Load(), faults, e.rs.Completed(), errText(err))
		}
	}()
	wg.Wait()
	logf("load and faults stopped after %s; draining (at most %s)", time.Since(start).Round(time.Second), cfg.Drain)
	drain(ctx, e, p, cfg.Drain, logf)
	close(stopProgress)
	progressDone.Wait()
	return audit(ctx, e, p, n, logDir)
}

func errText(err error) string {
	if err != nil {
		return err.Error()
	}
	return ""
}

// drain waits, at most limit, until every accepted HTTP and outbox
// notification is in Postgres, nothing is pending and the queues are idle.
// If they never are, it says what was still open and the checker reports
// what that leaves.
func drain(ctx context.Context, e *env, p *producers, limit time.Duration, logf func(string, ...any)) {
	deadline := time.Now().Add(limit)
	accepted, _ := p.snapshot()
	unsettled := func() string {
		notes, _, err := loadRecords(ctx, e.db)
		if err != nil {
			return err.Error()
		}
		missing, pending := 0, 0
		for _, s := range accepted {
			if notes[s.ID] == nil && s.Path != "go" {
				missing++
			}
		}
		for _, n := range notes {
			if n.Status == "pending" {
				pending++
			}
		}
		if missing+pending == 0 {
			return ""
		}
		return fmt.Sprintf("%d accepted HTTP/outbox notifications not in Postgres, %d pending", missing, pending)
	}
	why := "not checked"
	for time.Now().Before(deadline) {
		if why = unsettled(); why == "" {
			queues, err := fleet.WaitQueuesIdle(e.sentinel.URL(), time.Until(deadline))
			if why = unsettled(); err == nil && why == "" {
				logf("drained")
				return
			}
			if err != nil {
				why = queues
			}
		}
		time.Sleep(time.Second)
	}
	logf("drain: not settled after %s (%s); checking anyway", limit, why)
}

// audit loads the three records and checks them.
func audit(ctx context.Context, e *env, p *producers, n *nemesis, logDir string) (*result, error) {
	notes, twice, err := loadRecords(ctx, e.db)
	if err != nil {
		return nil, err
	}
	accepted, abandoned := p.snapshot()
	seen := e.rs.Snapshot()
	n.mu.Lock()
	loss := append([]Window(nil), n.loss...)
	n.mu.Unlock()
	rep := Check(&History{Accepted: accepted, Abandoned: abandoned, Seen: seen, Notes: notes, Twice: twice,
		Cap: receiverCap, Timeout: deliveryTimeout, RedisLoss: loss})
	res := &result{Report: rep, Accepted: make(map[string]int), Seen: len(seen), Abandoned: len(abandoned), Logs: logDir}
	for _, s := range accepted {
		res.Accepted[s.Path]++
	}
	res.Faults, _ = n.counts()
	n.mu.Lock()
	res.Harness = append(res.Harness, n.errors...)
	n.mu.Unlock()
	if len(rep.Violations) > 0 {
		for _, pr := range e.c.logs() {
			if strings.Contains(pr.Log(), "panic") {
				fmt.Fprintln(os.Stderr, pr.LogDigest())
			}
		}
	}
	return res, nil
}

// kindsSorted is m's keys in order.
func kindsSorted(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
