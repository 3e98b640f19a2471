package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	notifydconfig "github.com/notifyd/notifyd/internal/config"
	"github.com/notifyd/notifyd/internal/netguard"
	"github.com/notifyd/notifyd/internal/signing"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/tasks"
	"github.com/notifyd/notifyd/query"
	"github.com/notifyd/notifyd/worker"
)

// The bench runs notifyd, the no-op Asynq consumer and the receiver as
// separate processes (this binary re-executed with "child <role>"), so that
// the CPU split measures each one apart from the load generator.
//
// Protocol: the child prints one line "ready <json>" on stdout once it
// serves, and exits when its stdin is closed (or on SIGTERM).

// childEnv marks a re-executed child, so that a test binary (whose own flags
// would choke on "child") can dispatch to childMain in TestMain.
const childEnv = "NOTIFYD_BENCH_CHILD"

// child is a running child process.
type child struct {
	role  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	ready map[string]string
	log   string
	done  chan error
	// stats is what the child printed on its "stats" line at exit; read it
	// after stop.
	stats     map[string]float64
	stdoutEOF chan struct{}
}

func startChild(ctx context.Context, logDir, role string, args ...string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", role, err)
	}
	logPath := filepath.Join(logDir, role+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", role, err)
	}
	defer logFile.Close()
	cmd := exec.Command(exe, append([]string{"child", role}, args...)...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stderr = logFile
	// Children die with the bench, even if it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", role, err)
	}
	c := &child{role: role, cmd: cmd, stdin: stdin, log: logPath, done: make(chan error, 1), stdoutEOF: make(chan struct{})}
	lines := make(chan string, 1)
	go func() {
		defer close(c.stdoutEOF)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			switch line := sc.Text(); {
			case strings.HasPrefix(line, "ready "):
				lines <- strings.TrimPrefix(line, "ready ")
			case strings.HasPrefix(line, "stats "):
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "stats ")), &c.stats)
			}
		}
		close(lines)
	}()
	// Wait only once stdout is read to its end: Wait closes the pipe.
	go func() { <-c.stdoutEOF; c.done <- cmd.Wait() }()
	select {
	case line, ok := <-lines:
		if !ok {
			err := <-c.done
			return nil, fmt.Errorf("%s exited before it was ready (%v); log: %s%s", role, err, logPath, tail(logPath))
		}
		if err := json.Unmarshal([]byte(line), &c.ready); err != nil {
			c.stop()
			return nil, fmt.Errorf("%s: bad ready line %q: %w", role, line, err)
		}
		return c, nil
	case <-time.After(30 * time.Second):
		c.stop()
		return nil, fmt.Errorf("%s not ready after 30 s; log: %s%s", role, logPath, tail(logPath))
	case <-ctx.Done():
		c.stop()
		return nil, ctx.Err()
	}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// stop closes stdin (graceful shutdown) and waits; it kills the child after
// 30 s.
func (c *child) stop() error {
	c.stdin.Close()
	select {
	case err := <-c.done:
		c.done <- err
		return err
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		return fmt.Errorf("%s did not stop within 30 s; killed", c.role)
	}
}

// tail returns the last lines of a log file, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return "\n    " + strings.Join(lines, "\n    ")
}

// childMain runs a child role; args start with the role.
func childMain(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "notifyd-bench child: missing role")
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Stop when the parent closes our stdin or goes away.
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	var err error
	switch args[0] {
	case "receiver":
		err = runReceiver(ctx, args[1:])
	case "notifyd":
		err = runNotifyd(ctx, args[1:])
	case "noop":
		err = runNoop(ctx, args[1:])
	default:
		err = fmt.Errorf("unknown role %q", args[0])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "notifyd-bench child %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func ready(v map[string]string) {
	b, _ := json.Marshal(v)
	fmt.Printf("ready %s\n", b)
}

// serveUntil serves h on a loopback listener until ctx ends.
func serveUntil(ctx context.Context, ln net.Listener, h http.Handler) {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
		hs.Close()
	}()
	_ = hs.Serve(ln)
}

// ---------------------------------------------------------------- receiver

// receiverRecord is one request the receiver got.
type receiverRecord struct {
	id      string
	attempt int
	at      int64 // unix ns when the handler started (headers read)
}

type receiverState struct {
	mu      sync.Mutex
	records []receiverRecord
	ok      map[string]struct{} // ids answered 2xx
	total   atomic.Int64
}

// runReceiver is the fast local receiver. Routes:
//
//	POST /ok/<n>            200
//	POST /fail/<k>/<n>      500 for attempts 1..k, then 200
//	POST /hang/<n>          no answer until the client gives up
//	GET  /_stats            {"requests":…, "delivered":…} (unique ids answered 2xx)
//	GET  /_dump             one "id attempt unix_ns" line per request
//	POST /_reset            forget everything
func runReceiver(ctx context.Context, _ []string) error {
	st := &receiverState{ok: make(map[string]struct{})}
	mux := http.NewServeMux()
	record := func(r *http.Request) (string, int) {
		at := time.Now().UnixNano()
		id := r.Header.Get(signing.HeaderID)
		attempt, _ := strconv.Atoi(r.Header.Get(worker.HeaderAttempt))
		_, _ = io.Copy(io.Discard, r.Body)
		st.total.Add(1)
		st.mu.Lock()
		st.records = append(st.records, receiverRecord{id, attempt, at})
		st.mu.Unlock()
		return id, attempt
	}
	okay := func(w http.ResponseWriter, id string) {
		st.mu.Lock()
		st.ok[id] = struct{}{}
		st.mu.Unlock()
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "ok")
	}
	mux.HandleFunc("POST /ok/{n}", func(w http.ResponseWriter, r *http.Request) {
		id, _ := record(r)
		okay(w, id)
	})
	mux.HandleFunc("POST /fail/{k}/{n}", func(w http.ResponseWriter, r *http.Request) {
		id, attempt := record(r)
		k, _ := strconv.Atoi(r.PathValue("k"))
		if attempt <= k {
			http.Error(w, "failing on purpose", http.StatusInternalServerError)
			return
		}
		okay(w, id)
	})
	mux.HandleFunc("POST /hang/{n}", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		select {
		case <-r.Context().Done():
		case <-ctx.Done():
		case <-time.After(5 * time.Minute):
		}
	})
	mux.HandleFunc("GET /_stats", func(w http.ResponseWriter, r *http.Request) {
		st.mu.Lock()
		delivered := len(st.ok)
		st.mu.Unlock()
		fmt.Fprintf(w, `{"requests":%d,"delivered":%d}`, st.total.Load(), delivered)
	})
	mux.HandleFunc("GET /_dump", func(w http.ResponseWriter, r *http.Request) {
		st.mu.Lock()
		recs := append([]receiverRecord(nil), st.records...)
		st.mu.Unlock()
		bw := bufio.NewWriter(w)
		for _, rec := range recs {
			fmt.Fprintf(bw, "%s %d %d\n", rec.id, rec.attempt, rec.at)
		}
		_ = bw.Flush()
	})
	mux.HandleFunc("POST /_reset", func(w http.ResponseWriter, r *http.Request) {
		st.mu.Lock()
		st.records, st.ok = nil, make(map[string]struct{})
		st.mu.Unlock()
		st.total.Store(0)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ready(map[string]string{"url": "http://" + ln.Addr().String()})
	serveUntil(ctx, ln, mux)
	return nil
}

// ---------------------------------------------------------------- notifyd

// runNotifyd runs notifyd's worker (and optionally its API) as cmd/notifyd
// does, with the bench's settings.
func runNotifyd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("notifyd", flag.ContinueOnError)
	dbURL := fs.String("database-url", "", "")
	redisAddr := fs.String("redis-addr", "", "")
	redisDB := fs.Int("redis-db", 0, "")
	concurrency := fs.Int("concurrency", 100, "")
	withWorker := fs.Bool("worker", true, "")
	withAPI := fs.Bool("api", false, "")
	cpuprofile := fs.String("cpuprofile", "", "")
	adminToken := fs.String("admin-token", "", "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := store.Open(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer st.Close()
	// Built like notifyd's own client (cmd/notifyd), for the worker and the
	// no-op consumer alike.
	opt, err := notifydconfig.RedisOptions(fmt.Sprintf("redis://%s/%d", *redisAddr, *redisDB))
	if err != nil {
		return err
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	targets := netguard.Policy{AllowPrivate: true}
	var wg sync.WaitGroup
	var errs []error
	var mu sync.Mutex
	run := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	info := map[string]string{}
	if *withWorker {
		w := worker.New(st, rdb, worker.Config{
			Concurrency: *concurrency, Targets: targets, ShutdownTimeout: 2 * time.Second, Logger: logger,
		})
		run(func() error { return w.Run(ctx) })
	}
	if *withAPI {
		queue := asynq.NewClientFromRedisClient(rdb)
		defer queue.Close()
		api := query.New(st, rdb, queue, query.Config{AdminToken: *adminToken, Targets: targets, Logger: logger})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		info["api"] = "http://" + ln.Addr().String()
		run(func() error { return api.Serve(ctx, ln) })
	}
	// Asynq's server starts its fetch loop asynchronously; give it a moment
	// so the measurement does not include process start-up.
	time.Sleep(300 * time.Millisecond)
	ready(info)
	wg.Wait()
	printStats()
	return errors.Join(errs...)
}

// printStats reports, on a "stats" line, the mean rows per statement of the
// worker's two batched writes (what batching achieved during the run) and
// how many deliveries it deferred, by reason.
func printStats() {
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		return
	}
	stats := map[string]float64{}
	for _, f := range families {
		if f.GetName() == "notifyd_deliveries_deferred_total" {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					stats["deferred_"+l.GetValue()] += m.GetCounter().GetValue()
				}
			}
			continue
		}
		name, ok := map[string]string{
			"notifyd_begin_batch_size":    "begin_rows_per_statement",
			"notifyd_recorder_batch_size": "record_rows_per_statement",
		}[f.GetName()]
		if !ok || len(f.GetMetric()) == 0 {
			continue
		}
		if h := f.GetMetric()[0].GetHistogram(); h.GetSampleCount() > 0 {
			stats[name] = round(h.GetSampleSum()/float64(h.GetSampleCount()), 1)
		}
	}
	b, _ := json.Marshal(stats)
	fmt.Printf("stats %s\n", b)
}

// ---------------------------------------------------------------- no-op

// runNoop consumes notifyd's own task type with a handler that does nothing,
// on an Asynq server configured exactly as notifyd's worker configures its
// own: this is the queue's ceiling on the same Redis.
func runNoop(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("noop", flag.ContinueOnError)
	redisAddr := fs.String("redis-addr", "", "")
	redisDB := fs.Int("redis-db", 0, "")
	concurrency := fs.Int("concurrency", 100, "")
	queueLayout := fs.String("queues", "notifyd", `"notifyd" (the worker's weighted queues) or "single" (notifyd's first-attempt queue only)`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	queues := tasks.QueueWeights
	if *queueLayout == "single" {
		queues = map[string]int{tasks.QueueFirst: 1}
	}
	// Built like notifyd's own client (cmd/notifyd), for the worker and the
	// no-op consumer alike.
	opt, err := notifydconfig.RedisOptions(fmt.Sprintf("redis://%s/%d", *redisAddr, *redisDB))
	if err != nil {
		return err
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	var count, last atomic.Int64
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:              *concurrency,
		Queues:                   queues,
		TaskCheckInterval:        20 * time.Millisecond, // the worker's default PollInterval
		DelayedTaskCheckInterval: 20 * time.Millisecond,
		ShutdownTimeout:          2 * time.Second,
		LogLevel:                 asynq.WarnLevel,
	})
	err = srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		count.Add(1)
		last.Store(time.Now().UnixNano())
		return nil
	}))
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_stats", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"processed":%d,"last_ns":%d}`, count.Load(), last.Load())
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond)
	ready(map[string]string{"stats": "http://" + ln.Addr().String() + "/_stats"})
	serveUntil(ctx, ln, mux)
	return nil
}
