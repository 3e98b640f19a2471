// Command notifyd-soak is notifyd's nemesis soak: it runs a fleet of the
// real notifyd binary on loopback (2 API, 3 worker, 2 scheduler processes and
// the outbox relay, on its own Postgres databases and a private Redis
// Sentinel set with AOF), producers on all three paths (Go client, HTTP
// ingest, outbox) at a steady rate, receivers that are healthy, flaky, slow,
// hanging, answering 410 or redirecting, and a nemesis that performs faults
// on a schedule drawn from --seed: SIGKILL and SIGTERM of every process
// kind, Redis master killed and restarted (empty or from its AOF), Sentinel
// failover, Postgres cut off through a proxy, receivers down.
//
// Afterwards it drains the fleet and audits three independent records
// (producers' accepted list, receivers' requests, Postgres); it prints every
// violation with its ids and exits 1 if there is any. The Go client's
// documented loss window (acknowledged Notify calls lost by Redis, without
// WithReplicaAck) is counted apart and is not a violation.
//
// Usage: notifyd-soak -notifyd ./notifyd [-minutes 2] [-seed S] [-rate 30]
// (scripts/soak.sh builds notifyd and runs this).
//
// It must not reach into notifyd's internals to judge it: the checker reads
// only what producers were told, what receivers saw and what Postgres holds,
// as an outside auditor would.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// quietLogger drops go-redis's log lines.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("notifyd-soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	minutes := fs.Float64("minutes", 2, "length of the load and faults, in minutes")
	seed := fs.Uint64("seed", 0, "fault schedule seed (0: a fresh random one)")
	rate := fs.Int("rate", 30, "notifications per second, all three paths together (at most 50)")
	drainFor := fs.Duration("drain", 5*time.Minute, "longest wait, after the load, for everything to be terminal")
	bin := fs.String("notifyd", "", "path of the notifyd binary to run (required)")
	planOnly := fs.Bool("plan", false, "print the fault schedule of the seed and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *seed == 0 {
		*seed = rand.Uint64()
	}
	duration := time.Duration(*minutes * float64(time.Minute))
	replay := fmt.Sprintf("./scripts/soak.sh --minutes %g --seed %d", *minutes, *seed)
	fmt.Fprintf(stdout, "soak: seed %d (replay: %s)\n", *seed, replay)
	if *planOnly {
		for _, f := range Plan(*seed, duration, len(receiverKinds)) {
			fmt.Fprintln(stdout, f)
		}
		return 0
	}
	if *bin == "" || *rate < 1 || *rate > 50 || duration <= 0 {
		fmt.Fprintln(stderr, "notifyd-soak: -notifyd is required; -rate must be 1..50; -minutes > 0")
		return 2
	}
	// The in-process Go client's reconnect chatter during Redis faults
	// would bury the progress lines; the processes' own logs keep theirs.
	redis.SetLogger(quietLogger{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, config{Duration: duration, Seed: *seed, Rate: *rate, Drain: *drainFor, Bin: *bin, Out: stdout})
	if err != nil {
		fmt.Fprintf(stderr, "soak: %v\nseed %d; replay: %s\n", err, *seed, replay)
		return 1
	}
	printSummary(stdout, res, *seed, *minutes, replay)
	if len(res.Report.Violations) > 0 || len(res.Harness) > 0 {
		fmt.Fprintf(stdout, "SOAK FAILED: seed %d; replay: %s (process logs kept in %s)\n", *seed, replay, res.Logs)
		return 1
	}
	os.RemoveAll(res.Logs)
	return 0
}

// printSummary prints the figures of a run, in a form fit for the README.
func printSummary(w io.Writer, res *result, seed uint64, minutes float64, replay string) {
	rep := res.Report
	total := 0
	for _, n := range res.Accepted {
		total += n
	}
	faults, kinds := 0, []string{}
	for _, k := range kindsSorted(res.Faults) {
		faults += res.Faults[k]
		kinds = append(kinds, fmt.Sprintf("%s %d", k, res.Faults[k]))
	}
	fmt.Fprintf(w, "\n==== soak summary (seed %d, %g min) ====\n", seed, minutes)
	fmt.Fprintf(w, "command:       %s\n", replay)
	fmt.Fprintf(w, "notifications: %d accepted (go %d, http %d, outbox %d); %d delivered, %d failed; %d sends abandoned, %d of them exist anyway\n",
		total, res.Accepted["go"], res.Accepted["http"], res.Accepted["outbox"], rep.Delivered, rep.Failed, res.Abandoned, rep.Unconfirmed)
	fmt.Fprintf(w, "receivers:     %d requests seen; %d of %d receivers reached the cap of %d\n", res.Seen, rep.PeakInCap, len(receiverKinds), receiverCap)
	fmt.Fprintf(w, "faults:        %d (%s)\n", faults, strings.Join(kinds, ", "))
	fmt.Fprintf(w, "cap overshoot while Redis had lost the slots (not a violation): %d receivers\n", rep.CapAfterRedisLoss)
	fmt.Fprintf(w, "go client loss window (no WithReplicaAck; not a violation): %d of %d acknowledged Notify calls lost (%d of them after a receiver got an attempt)\n", len(rep.GoLost), res.Accepted["go"], rep.GoLostSeen)
	for _, h := range res.Harness {
		fmt.Fprintf(w, "harness error: %s\n", h)
	}
	fmt.Fprintf(w, "violations:    %d\n", len(rep.Violations))
	byKind := make(map[string]int)
	for _, v := range rep.Violations {
		byKind[v.Kind]++
	}
	for _, k := range kindsSorted(byKind) {
		fmt.Fprintf(w, "  %s: %d\n", k, byKind[k])
	}
	for i, v := range rep.Violations {
		if i == 200 {
			fmt.Fprintf(w, "  … %d more\n", len(rep.Violations)-i)
			break
		}
		fmt.Fprintf(w, "  %s\n", v)
	}
}
