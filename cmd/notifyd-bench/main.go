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
// --database-url (dropped at the end unless --keep) and starts a redis-server
// of its own on a free loopback port; with --redis-addr host:port it claims
// Redis database --redis-db there instead (flushed at start and end; never
// FLUSHALL).
//
// The throughput run is repeated for each count of worker processes in
// --workers and, with --queue-shards, on sharded queues; it reports what a
// notification costs (CPU, Redis commands and bytes, rows, WAL, queue
// memory) and a sizing table derived from those costs (--sizing-*
// assumptions; --sizing-from prints it again from a saved JSON line).
//
// Scenarios: throughput (N notifications through the Go client), ceiling (the
// same N as no-op Asynq tasks), latency (steady rate), retry (precision of the
// retry schedule), isolation (30 % of receivers hanging), query (list and
// by-key on --query-rows generated rows), storage (bytes per notification),
// ingest (the throughput run's N through POST /v1/notifications).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

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

var allScenarios = []string{"throughput", "storage", "ceiling", "ingest", "latency", "retry", "isolation", "query"}

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
	// privateRedis is the bench's own redis-server (--redis-addr private).
	privateRedis *privateRedis
	// childEnv is added to the environment of the notifyd children started
	// (a throughput configuration's NOTIFYD_QUEUE_SHARDS).
	childEnv []string

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
	if cfg.scale.sizingFrom != "" {
		if err := sizingFrom(cfg.scale.sizingFrom, cfg.scale.assume, stdout); err != nil {
			fmt.Fprintf(stderr, "notifyd-bench: %v\n", err)
			return 1
		}
		return 0
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
		{"ingest", b.ingestScenario}, // after ceiling: its verdict is a ratio to it
		{"latency", b.latency},
		{"retry", b.retry},
		{"isolation", b.isolation},
		{"query", b.query},
	}
	failed := false
	for _, s := range steps {
		// Storage is measured on the throughput run's rows, and the sizing
		// after throughput needs it.
		want := selected(s.name) || (s.name == "throughput" && selected("storage")) || (s.name == "storage" && selected("throughput"))
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
	b.sizing()
	b.report()
	if failed {
		return 1
	}
	return 0
}
