// Command notifyd-bench measures notifyd against the real stack: PostgreSQL,
// Redis, notifyd's worker and API as their own processes, and a fast local
// receiver. It is a benchmark, not a test: it prints figures and compares them
// with the project's targets, and never fails because a target is missed.
//
//	go run ./cmd/notifyd-bench                       # everything (a few minutes)
//	go run ./cmd/notifyd-bench --scenarios throughput,ceiling --n 20000
//	go run ./cmd/notifyd-bench --smoke               # tiny sizes, for CI
//
// It creates its own database notifyd_bench_<pid> on the server of
// --database-url (dropped at the end unless --keep) and claims Redis database
// --redis-db (flushed at start and end; never FLUSHALL).
//
// Scenarios: throughput (N notifications through the Go client), ceiling (the
// same N as no-op Asynq tasks), latency (steady rate), retry (precision of the
// retry schedule), isolation (30 % of receivers hanging), query (list and
// by-key on --query-rows generated rows), storage (bytes per notification).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/retry"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/notifier"
)

func main() {
	if os.Getenv(childEnv) != "" || (len(os.Args) > 1 && os.Args[1] == "child") {
		args := os.Args[1:]
		if len(args) > 0 && args[0] == "child" {
			args = args[1:]
		}
		os.Exit(childMain(args))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

var allScenarios = []string{"throughput", "storage", "ceiling", "latency", "retry", "isolation", "query"}

// Targets from the project's performance issue (2-core machine, everything on it).
const (
	targetThroughput   = 8000.0 // delivered/s
	targetCeilingRatio = 0.50   // of the no-op Asynq ceiling
	targetFirstP99MS   = 50.0   // enqueue → first attempt, at 500/s
	targetRetryErrMS   = 1000.0 // per attempt
	targetIsolation    = 0.80   // of no-fault throughput
	targetQueryP99MS   = 10.0   // page of 50 on 10 M rows
	targetStorageBytes = 1024.0 // per delivered notification, excluding payload
)

type config struct {
	databaseURL    string
	redisAddr      string
	redisDB        int
	noRedisClaim   bool
	scenarios      []string
	n              int
	receivers      int
	concurrency    int
	producers      int
	payloadBytes   int
	rate           int
	duration       time.Duration
	retryN         int
	retryIntervals []time.Duration
	isoN           int
	hangTimeout    time.Duration
	queryRows      int
	queryReceivers int
	queryConns     int
	queryDuration  time.Duration
	queryDB        string
	repeat         int
	jsonOnly       bool
	cpuprofile     string
	keep           bool
	smoke          bool
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("notifyd-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.databaseURL, "database-url", envOr("NOTIFYD_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"),
		"PostgreSQL server (admin connection); the bench creates its own database there")
	fs.StringVar(&c.redisAddr, "redis-addr", envOr("NOTIFYD_TEST_REDIS_ADDR", "127.0.0.1:6379"), "Redis server")
	fs.IntVar(&c.redisDB, "redis-db", 14, "Redis database index the bench claims and flushes (FLUSHDB, never FLUSHALL)")
	fs.BoolVar(&c.noRedisClaim, "no-redis-claim", false, "do not claim --redis-db (the caller claimed it, e.g. a test through testenv)")
	scen := fs.String("scenarios", strings.Join(allScenarios, ","), "comma-separated scenarios to run")
	fs.IntVar(&c.n, "n", 50000, "notifications in the throughput and ceiling runs")
	fs.IntVar(&c.receivers, "receivers", 100, "receivers the notifications are spread over")
	fs.IntVar(&c.concurrency, "concurrency", 100, "worker concurrency (also of the no-op ceiling consumer)")
	fs.IntVar(&c.producers, "producers", 16, "goroutines enqueueing through the Go client")
	fs.IntVar(&c.payloadBytes, "payload-bytes", 300, "size of each notification's JSON payload")
	fs.IntVar(&c.rate, "rate", 500, "offered rate of the latency and isolation runs (notifications/s)")
	fs.DurationVar(&c.duration, "duration", 30*time.Second, "length of the latency and isolation steady-rate runs")
	fs.IntVar(&c.retryN, "retry-n", 200, "notifications in the retry run (one receiver each)")
	intervals := fs.String("retry-intervals", "1s,2s,3s", "retry schedule of the retry run; receivers fail every attempt but the last")
	fs.IntVar(&c.isoN, "iso-n", 0, "notifications in the isolation burst (default: n, so it compares with the throughput run)")
	fs.DurationVar(&c.hangTimeout, "hang-timeout", 2*time.Second, "timeout of the hanging receivers in the isolation run")
	fs.IntVar(&c.queryRows, "query-rows", 10_000_000, "notifications generated (COPY) for the query run")
	fs.IntVar(&c.queryReceivers, "query-receivers", 10, "receivers the generated rows belong to")
	fs.IntVar(&c.queryConns, "query-conns", 8, "concurrent connections of the query load generator")
	fs.DurationVar(&c.queryDuration, "query-duration", 10*time.Second, "length of each query load run")
	fs.StringVar(&c.queryDB, "query-db", "", "database for the query run, kept afterwards and reused when it already holds --query-rows rows")
	fs.IntVar(&c.repeat, "repeat", 1, "run throughput and ceiling this many times and report the medians")
	fs.BoolVar(&c.jsonOnly, "json", false, "print only the JSON line on stdout")
	fs.StringVar(&c.cpuprofile, "cpuprofile", "", "write a CPU profile of the notifyd process during the throughput run (and of the API during the query run, to the path plus .query)")
	fs.BoolVar(&c.keep, "keep", false, "keep the bench database")
	fs.BoolVar(&c.smoke, "smoke", false, "tiny sizes (CI): n=500, query-rows=20000, runs of a few seconds")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if c.smoke {
		// Explicit flags win over the smoke sizes.
		smoke := map[string]func(){
			"n": func() { c.n = 500 }, "receivers": func() { c.receivers = 20 }, "rate": func() { c.rate = 100 },
			"duration": func() { c.duration = 2 * time.Second }, "retry-n": func() { c.retryN = 10 },
			"retry-intervals": func() { *intervals = "1s,1s" }, "iso-n": func() { c.isoN = 200 },
			"hang-timeout": func() { c.hangTimeout = 500 * time.Millisecond }, "query-rows": func() { c.queryRows = 20000 },
			"query-duration": func() { c.queryDuration = time.Second }, "query-conns": func() { c.queryConns = 4 },
		}
		for name, f := range smoke {
			if !set[name] {
				f()
			}
		}
	}
	for _, s := range strings.Split(*scen, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if s == "all" {
			c.scenarios = allScenarios
			continue
		}
		if !slices.Contains(allScenarios, s) {
			return nil, fmt.Errorf("unknown scenario %q (have %s)", s, strings.Join(allScenarios, ","))
		}
		c.scenarios = append(c.scenarios, s)
	}
	for _, s := range strings.Split(*intervals, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d < retry.MinInterval {
			return nil, fmt.Errorf("--retry-intervals: %q is not a duration of at least %s", s, retry.MinInterval)
		}
		c.retryIntervals = append(c.retryIntervals, d)
	}
	if c.isoN <= 0 {
		c.isoN = c.n
	}
	switch {
	case c.n <= 0 || c.receivers <= 0 || c.concurrency <= 0 || c.producers <= 0 || c.rate <= 0 || c.retryN <= 0 || c.repeat <= 0:
		return nil, errors.New("sizes must be positive")
	case c.hangTimeout < 100*time.Millisecond || c.hangTimeout > 30*time.Second:
		return nil, errors.New("--hang-timeout must be between 100ms and 30s (a receiver's timeout range)")
	case c.queryReceivers <= 0 || c.queryRows < c.queryReceivers:
		return nil, errors.New("--query-rows must be at least --query-receivers")
	case c.payloadBytes < 64:
		return nil, errors.New("--payload-bytes must be at least 64")
	}
	return c, nil
}

// Results is the JSON line: every scenario key is present, null when the
// scenario was not run.
type Results struct {
	Bench      string              `json:"bench"`
	Env        Env                 `json:"env"`
	Params     map[string]any      `json:"params"`
	Throughput *ThroughputResult   `json:"throughput"`
	Storage    *StorageResult      `json:"storage"`
	Ceiling    *CeilingResult      `json:"ceiling"`
	Latency    *LatencyResult      `json:"latency"`
	Retry      *RetryResult        `json:"retry"`
	Isolation  *IsolationResult    `json:"isolation"`
	Query      *QueryResult        `json:"query"`
	Targets    map[string]*Verdict `json:"targets"`
	Errors     map[string]string   `json:"errors,omitempty"`
}

// Verdict is one target's outcome.
type Verdict struct {
	Met  bool   `json:"met"`
	Text string `json:"text"`
}

// row is one line of the table.
type row struct{ scenario, figure, target, verdict string }

type bench struct {
	cfg     *config
	stdout  io.Writer
	prog    *progress
	logDir  string
	dbName  string
	dbURL   string
	st      *store.Store
	rdb     *redis.Client
	client  *notifier.Client
	queue   *asynq.Client
	recv    *child
	recvURL string
	http    *http.Client
	sampler *cpuSampler

	rolesMu sync.Mutex
	roles   map[int]string

	okReceivers   []benchReceiver
	failReceivers []benchReceiver
	isoReceivers  []benchReceiver // the first hangCount hang
	hangCount     int

	res  Results
	rows []row
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "notifyd-bench: %v\n", err)
		return 2
	}
	b := &bench{cfg: cfg, stdout: stdout, prog: newProgress(stderr, false), roles: map[int]string{},
		http: &http.Client{Timeout: 30 * time.Second}}
	b.res = Results{Bench: "notifyd", Targets: map[string]*Verdict{}, Errors: map[string]string{}}
	cleanup, err := b.setup(ctx)
	defer cleanup()
	if err != nil {
		fmt.Fprintf(stderr, "notifyd-bench: setup: %v\n", err)
		return 1
	}
	selected := func(s string) bool { return slices.Contains(cfg.scenarios, s) }
	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{"throughput", b.throughput},
		{"storage", b.storage},
		{"ceiling", b.ceiling},
		{"latency", b.latency},
		{"retry", b.retry},
		{"isolation", b.isolation},
		{"query", b.query},
	}
	failed := false
	for _, s := range steps {
		want := selected(s.name) || (s.name == "throughput" && selected("storage"))
		if !want || ctx.Err() != nil {
			continue
		}
		if err := s.run(ctx); err != nil {
			failed = true
			b.prog.note(fmt.Sprintf("%s: FAILED: %v", s.name, err))
			b.res.Errors[s.name] = err.Error()
			b.rows = append(b.rows, row{s.name, "FAILED: " + firstLine(err.Error()), "", ""})
		}
	}
	if ctx.Err() != nil {
		b.res.Errors["bench"] = "interrupted"
		failed = true
	}
	b.report()
	if failed {
		return 1
	}
	return 0
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func (b *bench) setup(ctx context.Context) (cleanup func(), err error) {
	var undo []func()
	cleanup = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	cfg := b.cfg
	b.logDir, err = os.MkdirTemp("", "notifyd-bench-")
	if err != nil {
		return cleanup, err
	}
	undo = append(undo, func() {
		if !cfg.keep && len(b.res.Errors) == 0 {
			os.RemoveAll(b.logDir)
		} else {
			b.prog.note("child process logs kept in " + b.logDir)
		}
	})

	b.rdb = redis.NewClient(&redis.Options{Addr: cfg.redisAddr, DB: cfg.redisDB, PoolSize: 4 * cfg.producers})
	undo = append(undo, func() { b.rdb.Close() })
	if !cfg.noRedisClaim {
		release, err := claimRedisDB(ctx, cfg.redisAddr, cfg.redisDB, b.prog.note)
		if err != nil {
			return cleanup, err
		}
		undo = append(undo, release)
	}
	if err := b.rdb.FlushDB(ctx).Err(); err != nil {
		return cleanup, fmt.Errorf("flush redis db %d: %w", cfg.redisDB, err)
	}
	undo = append(undo, func() { b.rdb.FlushDB(context.Background()) })

	b.dbName = fmt.Sprintf("notifyd_bench_%d", os.Getpid())
	b.prog.note(fmt.Sprintf("setup: database %s, redis db %d, %d cores", b.dbName, cfg.redisDB, runtime.NumCPU()))
	// Registered before the database exists, so a failure half way through
	// creating or migrating it leaves nothing behind.
	undo = append(undo, func() {
		if cfg.keep {
			b.prog.note("kept database " + b.dbName)
			return
		}
		if err := dropDatabase(cfg.databaseURL, b.dbName); err != nil {
			b.prog.note(fmt.Sprintf("could not drop database %s: %v", b.dbName, err))
		}
	})
	b.dbURL, err = createDatabase(ctx, cfg.databaseURL, b.dbName)
	if err != nil {
		return cleanup, err
	}
	b.st, err = store.Open(ctx, b.dbURL)
	if err != nil {
		return cleanup, err
	}
	undo = append(undo, b.st.Close)
	b.res.Env = collectEnv(ctx, b.dbURL, b.rdb)
	b.res.Params = map[string]any{
		"n": cfg.n, "receivers": cfg.receivers, "concurrency": cfg.concurrency, "producers": cfg.producers,
		"payload_bytes": cfg.payloadBytes, "rate": cfg.rate, "duration_s": cfg.duration.Seconds(), "retry_n": cfg.retryN,
		"retry_intervals": durStrings(cfg.retryIntervals), "iso_n": cfg.isoN, "hang_timeout_s": cfg.hangTimeout.Seconds(),
		"query_rows": cfg.queryRows, "query_receivers": cfg.queryReceivers, "query_conns": cfg.queryConns,
		"query_duration_s": cfg.queryDuration.Seconds(), "scenarios": cfg.scenarios, "smoke": cfg.smoke, "repeat": cfg.repeat,
	}
	b.sampler = &cpuSampler{databases: []string{b.dbName, b.queryDBName()}, roles: b.roleMap}

	b.recv, err = b.startChild(ctx, "receiver")
	if err != nil {
		return cleanup, err
	}
	undo = append(undo, func() { b.stopChild(b.recv) })
	b.recvURL = b.recv.ready["url"]

	if err := b.createReceivers(ctx); err != nil {
		return cleanup, err
	}
	if err := syncRegistry(ctx, b.st, b.rdb); err != nil {
		return cleanup, err
	}
	b.client = notifier.NewFromRedisClient(b.rdb, notifier.WithAllowPrivateTargets(true))
	undo = append(undo, func() { b.client.Close() })
	b.queue = asynq.NewClientFromRedisClient(b.rdb)
	undo = append(undo, func() { b.queue.Close() })
	return cleanup, nil
}

func durStrings(ds []time.Duration) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.String()
	}
	return out
}

func (b *bench) createReceivers(ctx context.Context) error {
	cfg := b.cfg
	var specs []receiverSpec
	for i := range cfg.receivers {
		specs = append(specs, receiverSpec{name: fmt.Sprintf("ok-%d", i), url: fmt.Sprintf("%s/ok/%d", b.recvURL, i)})
	}
	var err error
	if b.okReceivers, err = createReceivers(ctx, b.st, specs); err != nil {
		return err
	}
	// Retry: fail every attempt but the last of the schedule. One receiver
	// per notification: a receiver failing many notifications in a row
	// opens notifyd's circuit breaker (10 consecutive failures), which then
	// defers retries by its cool-down on purpose; that is outage handling,
	// not the precision of the schedule this scenario measures.
	k := len(cfg.retryIntervals)
	policy := &retry.Policy{Intervals: cfg.retryIntervals}
	specs = specs[:0]
	for i := range cfg.retryN {
		specs = append(specs, receiverSpec{name: fmt.Sprintf("fail-%d", i), url: fmt.Sprintf("%s/fail/%d/%d", b.recvURL, k, i), retry: policy})
	}
	if b.failReceivers, err = createReceivers(ctx, b.st, specs); err != nil {
		return err
	}
	// Isolation: 30 % of the receivers hang until their timeout.
	b.hangCount = max(1, (cfg.receivers*3+5)/10)
	specs = specs[:0]
	for i := range cfg.receivers {
		sp := receiverSpec{name: fmt.Sprintf("iso-ok-%d", i), url: fmt.Sprintf("%s/ok/iso%d", b.recvURL, i)}
		if i < b.hangCount {
			sp = receiverSpec{name: fmt.Sprintf("iso-hang-%d", i), url: fmt.Sprintf("%s/hang/%d", b.recvURL, i), timeout: cfg.hangTimeout}
		}
		specs = append(specs, sp)
	}
	b.isoReceivers, err = createReceivers(ctx, b.st, specs)
	return err
}

func (b *bench) roleMap() map[int]string {
	b.rolesMu.Lock()
	defer b.rolesMu.Unlock()
	return maps.Clone(b.roles)
}

// startChild starts a child and registers its pid for the CPU split.
func (b *bench) startChild(ctx context.Context, role string, args ...string) (*child, error) {
	c, err := startChild(ctx, b.logDir, role, args...)
	if err != nil {
		return nil, err
	}
	category := map[string]string{"receiver": cpuReceiver, "notifyd": cpuNotifyd, "noop": cpuNotifyd}[role]
	b.rolesMu.Lock()
	b.roles[c.pid()] = category
	b.rolesMu.Unlock()
	return c, nil
}

func (b *bench) stopChild(c *child) {
	if c == nil {
		return
	}
	if err := c.stop(); err != nil {
		var ee interface{ ExitCode() int }
		if !errors.As(err, &ee) {
			b.prog.note(fmt.Sprintf("%s: %v", c.role, err))
		}
	}
}

// notifydArgs are the flags of a notifyd child.
func (b *bench) notifydArgs(dbURL string, extra ...string) []string {
	return append([]string{
		"-database-url", dbURL, "-redis-addr", b.cfg.redisAddr, "-redis-db", fmt.Sprint(b.cfg.redisDB),
		"-concurrency", fmt.Sprint(b.cfg.concurrency),
	}, extra...)
}

// resetQueue empties the bench's Redis database between runs (leftover
// tasks of one scenario must not load the next), republishes the receiver
// registry and clears the receiver's records.
func (b *bench) resetQueue(ctx context.Context) error {
	if err := b.rdb.FlushDB(ctx).Err(); err != nil {
		return err
	}
	if err := syncRegistry(ctx, b.st, b.rdb); err != nil {
		return err
	}
	resp, err := b.http.Post(b.recvURL+"/_reset", "", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// ---------------------------------------------------------------- output

func (b *bench) target(name string, met bool, text string) {
	b.res.Targets[name] = &Verdict{Met: met, Text: text}
}

func (b *bench) report() {
	line, err := json.Marshal(b.res)
	if err != nil {
		line = []byte(fmt.Sprintf(`{"bench":"notifyd","errors":{"json":%q}}`, err.Error()))
	}
	if b.cfg.jsonOnly {
		fmt.Fprintf(b.stdout, "%s\n", line)
		return
	}
	e := b.res.Env
	fmt.Fprintf(b.stdout, "\nnotifyd benchmark — %d cores (%s), %s, notifyd %s, asynq %s, PostgreSQL %s, Redis %s\n",
		e.Cores, e.CPUModel, e.Go, e.Notifyd, e.Asynq, e.Postgres, e.Redis)
	fmt.Fprintf(b.stdout, "started %s, load average before %s; n=%d receivers=%d concurrency=%d\n\n",
		e.Started, e.LoadAvgBefore, b.cfg.n, b.cfg.receivers, b.cfg.concurrency)
	tw := tabwriter.NewWriter(b.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tfigure\ttarget\tresult")
	fmt.Fprintln(tw, "--------\t------\t------\t------")
	for _, r := range b.rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.scenario, r.figure, r.target, r.verdict)
	}
	tw.Flush()
	fmt.Fprintf(b.stdout, "\n%s\n", line)
}
