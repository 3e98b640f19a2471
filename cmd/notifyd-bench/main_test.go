package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testenv"
)

// TestMain lets the test binary play the bench's child processes: the bench
// re-executes os.Executable(), which is this binary under go test.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		args := os.Args[1:]
		if len(args) > 0 && args[0] == "child" {
			args = args[1:]
		}
		os.Exit(childMain(args))
	}
	os.Exit(m.Run())
}

// TestSmoke runs every scenario at --smoke sizes against the real stack. It
// checks that the bench completes and reports every figure; it asserts no
// timing (it is a benchmark, the figures are whatever the machine gives).
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Postgres databases, Redis and child processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	// The bench's own redis-server (the default), two worker counts and a
	// sharded run, so that every throughput configuration and cost runs;
	// the ingest through the batch endpoint, in batches that do not divide
	// n (query's tests cover the single endpoint).
	code := run(ctx, []string{
		"--smoke", "--database-url", testenv.DatabaseURL(), "--workers", "1,2", "--queue-shards", "2", "--ingest-batch", "7",
	}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	out := strings.TrimSpace(stdout.String())
	if !strings.Contains(out, "scenario") || !strings.Contains(out, "1 throughput") {
		t.Errorf("no table in the output:\n%s", out)
	}
	lines := strings.Split(out, "\n")
	var res map[string]json.RawMessage
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("last line is not the JSON line: %v\n%s", err, out)
	}
	for _, key := range []string{"bench", "env", "params", "throughput", "storage", "ceiling", "ingest", "latency", "retry", "isolation", "query", "targets", "scaling", "sizing"} {
		v, ok := res[key]
		if !ok || string(v) == "null" {
			t.Errorf("JSON line: %q missing or null", key)
		}
	}
	if string(res["bench"]) != `"notifyd"` {
		t.Errorf(`bench = %s, want "notifyd"`, res["bench"])
	}
	var tp ThroughputResult
	if err := json.Unmarshal(res["throughput"], &tp); err != nil || tp.N != 500 || tp.PerSecond <= 0 || tp.CPU == nil {
		t.Errorf("throughput = %s (%v)", res["throughput"], err)
	}
	checkCosts(t, tp.Costs)
	var in IngestResult
	if err := json.Unmarshal(res["ingest"], &in); err != nil || in.N != 500 || in.Batch != 7 || in.PerSecond <= 0 {
		t.Errorf("ingest = %s (%v)", res["ingest"], err)
	}
	checkScaling(t, res["scaling"])
	checkSizing(t, res["sizing"], out)
	var q QueryResult
	if err := json.Unmarshal(res["query"], &q); err != nil {
		t.Fatal(err)
	}
	// The query routes may not exist in every build; when they do, the
	// rows must have been generated and the load must have run.
	if len(q.Missing) < 2 && (q.Rows != 20000 || (q.ListOne == nil && q.ByKeyOne == nil)) {
		t.Errorf("query = %s", res["query"])
	}
	// With the routes there, the console's pages were measured too, without errors.
	if len(q.Missing) == 0 {
		c := q.Console
		if c == nil || c.Overview == nil || c.ByKey == nil || c.Detail == nil || c.Receivers == nil ||
			c.Overview.Errors+c.ByKey.Errors+c.Detail.Errors+c.Receivers.Errors > 0 ||
			c.Overview.Requests == 0 || c.Receivers.Requests == 0 {
			t.Errorf("console = %+v", c)
		}
	}
	if _, ok := res["errors"]; ok {
		t.Errorf("errors reported: %s", res["errors"])
	}
}

func TestParseFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		wantErr bool
		check   func(*config) bool
	}{
		{"defaults", nil, false, func(c *config) bool {
			return c.n == 50000 && c.queryRows == 10_000_000 && len(c.scenarios) == len(allScenarios) && c.isoN == 50000 && c.redisDB == 14
		}},
		{"smoke sizes", []string{"--smoke"}, false, func(c *config) bool {
			return c.n == 500 && c.queryRows == 20000 && c.duration == 2*time.Second && len(c.retryIntervals) == 2
		}},
		{"explicit flag beats smoke", []string{"--smoke", "--n", "700"}, false, func(c *config) bool { return c.n == 700 && c.queryRows == 20000 }},
		{"scenario subset", []string{"--scenarios", "ceiling, throughput"}, false, func(c *config) bool {
			return strings.Join(c.scenarios, ",") == "ceiling,throughput"
		}},
		{"unknown scenario", []string{"--scenarios", "speed"}, true, nil},
		{"bad interval", []string{"--retry-intervals", "1s,soon"}, true, nil},
		{"interval below minimum", []string{"--retry-intervals", "10ms"}, true, nil},
		{"hang timeout out of range", []string{"--hang-timeout", "1m"}, true, nil},
		{"stray argument", []string{"run"}, true, nil},
		{"ingest batch", []string{"--ingest-batch", "500"}, false, func(c *config) bool { return c.ingestBatch == 500 }},
		{"ingest batch over the endpoint's limit", []string{"--ingest-batch", "501"}, true, nil},
		{"ingest batch of none", []string{"--ingest-batch", "0"}, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := parseFlags(tt.args, &bytes.Buffer{})
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && !tt.check(c) {
				t.Errorf("config = %+v", c)
			}
		})
	}
}

func TestVerdict(t *testing.T) {
	t.Parallel()
	tests := []struct {
		value, target float64
		atLeast       bool
		met           bool
		text          string
	}{
		{9000, 8000, true, true, "met (1.12× target)"},
		{6000, 8000, true, false, "MISSED by 25% (0.75× target)"},
		{40, 50, false, true, "met (0.80× limit)"},
		{150, 50, false, false, "MISSED: 3.0× the limit"},
	}
	for _, tt := range tests {
		met, text := verdict(tt.value, tt.target, tt.atLeast)
		if met != tt.met || text != tt.text {
			t.Errorf("verdict(%v, %v, %v) = %v %q, want %v %q", tt.value, tt.target, tt.atLeast, met, text, tt.met, tt.text)
		}
	}
}

func TestDist(t *testing.T) {
	t.Parallel()
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	d := distOf(ds)
	if d.Count != 100 || d.P50 != 50 || d.P99 != 99 || d.Max != 100 || d.Mean != 50.5 {
		t.Errorf("distOf = %+v", d)
	}
	if z := distOf(nil); z.Count != 0 || z.P99 != 0 {
		t.Errorf("distOf(nil) = %+v", z)
	}
}

func TestProcTicks(t *testing.T) {
	t.Parallel()
	ticks, start, ok := procTicks("/proc/self")
	if !ok || start == 0 {
		t.Fatalf("procTicks(/proc/self) = %d, %d, %v", ticks, start, ok)
	}
	s := &cpuSampler{databases: []string{"notifyd_bench_1"}, roles: func() map[int]string { return nil }}
	tests := []struct{ title, want string }{
		{"postgres: 15/main: postgres notifyd_bench_1 127.0.0.1(5555) idle", cpuPostgres},
		{"postgres: 15/main: postgres other_db 127.0.0.1(5555) idle", cpuPostgresOther},
		{"postgres: 15/main: walwriter", cpuPostgres},
		{"postgres: 15/main: autovacuum worker other_db", cpuPostgresOther},
		{"postgres: 15/main: autovacuum worker notifyd_bench_1", cpuPostgres},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		if err := os.WriteFile(dir+"/cmdline", []byte(tt.title+"\x00\x00"), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := s.postgresCategory(dir); got != tt.want {
			t.Errorf("%q: %s, want %s", tt.title, got, tt.want)
		}
	}
}

// TestResultsKeys: the JSON line has every scenario's key, null when the
// scenario did not run, so two lines compare key by key.
func TestResultsKeys(t *testing.T) {
	t.Parallel()
	line, err := json.Marshal(Results{Bench: "notifyd"})
	if err != nil {
		t.Fatal(err)
	}
	var res map[string]json.RawMessage
	if err := json.Unmarshal(line, &res); err != nil {
		t.Fatal(err)
	}
	for _, key := range append([]string{"env", "params", "targets"}, allScenarios...) {
		if _, ok := res[key]; !ok {
			t.Errorf("%s: key %q missing", line, key)
		}
	}
	for _, key := range allScenarios {
		if v := string(res[key]); v != "null" {
			t.Errorf("%q = %s, want null when not run", key, v)
		}
	}
}
