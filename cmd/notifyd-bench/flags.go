package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/notifyd/notifyd/internal/retry"
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
	ingestConns    int
	ingestBatch    int
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
	scale          scaleConfig // --workers, --queue-shards and the sizing assumptions (scaleflags.go)
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
	fs.StringVar(&c.redisAddr, "redis-addr", privateRedisAddr,
		`Redis server host:port, or "private": a redis-server of the bench's own on a free loopback port (its figures count only the bench's traffic)`)
	fs.IntVar(&c.redisDB, "redis-db", 14, "Redis database index the bench claims and flushes on --redis-addr host:port (FLUSHDB, never FLUSHALL)")
	fs.BoolVar(&c.noRedisClaim, "no-redis-claim", false, "do not claim --redis-db (the caller claimed it, e.g. a test through testenv)")
	scen := fs.String("scenarios", strings.Join(allScenarios, ","), "comma-separated scenarios to run")
	fs.IntVar(&c.n, "n", 50000, "notifications in the throughput and ceiling runs")
	fs.IntVar(&c.receivers, "receivers", 100, "receivers the notifications are spread over")
	fs.IntVar(&c.concurrency, "concurrency", 100, "worker concurrency (also of the no-op ceiling consumer)")
	fs.IntVar(&c.producers, "producers", 16, "goroutines enqueueing through the Go client")
	fs.IntVar(&c.ingestConns, "ingest-conns", 64, "concurrent keep-alive HTTP connections of the ingest run")
	fs.IntVar(&c.ingestBatch, "ingest-batch", 1,
		"notifications per request of the ingest run: 1 sends each through POST /v1/notifications, more sends them through POST /v1/notifications/batch (at most 500)")
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
	c.scale.register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if c.smoke {
		c.applySmoke(set, intervals)
	}
	if err := c.parseLists(*scen, *intervals); err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	if err := c.scale.parse(); err != nil {
		return nil, err
	}
	return c, nil
}

// applySmoke sets the smoke sizes of every flag not given explicitly (set).
func (c *config) applySmoke(set map[string]bool, intervals *string) {
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

// parseLists reads the comma-separated --scenarios and --retry-intervals.
func (c *config) parseLists(scenarios, intervals string) error {
	for _, s := range strings.Split(scenarios, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if s == "all" {
			c.scenarios = allScenarios
			continue
		}
		if !slices.Contains(allScenarios, s) {
			return fmt.Errorf("unknown scenario %q (have %s)", s, strings.Join(allScenarios, ","))
		}
		c.scenarios = append(c.scenarios, s)
	}
	for _, s := range strings.Split(intervals, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d < retry.MinInterval {
			return fmt.Errorf("--retry-intervals: %q is not a duration of at least %s", s, retry.MinInterval)
		}
		c.retryIntervals = append(c.retryIntervals, d)
	}
	return nil
}

// validate fills the derived defaults and rejects sizes out of range.
func (c *config) validate() error {
	if c.isoN <= 0 {
		c.isoN = c.n
	}
	switch {
	case c.n <= 0 || c.receivers <= 0 || c.concurrency <= 0 || c.producers <= 0 || c.ingestConns <= 0 || c.rate <= 0 || c.retryN <= 0 || c.repeat <= 0:
		return errors.New("sizes must be positive")
	case c.hangTimeout < 100*time.Millisecond || c.hangTimeout > 30*time.Second:
		return errors.New("--hang-timeout must be between 100ms and 30s (a receiver's timeout range)")
	case c.queryReceivers <= 0 || c.queryRows < c.queryReceivers:
		return errors.New("--query-rows must be at least --query-receivers")
	case c.ingestBatch < 1 || c.ingestBatch > 500:
		return errors.New("--ingest-batch must be between 1 and 500 (the batch endpoint's limit)")
	case c.payloadBytes < 64:
		return errors.New("--payload-bytes must be at least 64")
	}
	return nil
}
