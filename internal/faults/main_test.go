package faults

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// notifydBin is the notifyd binary built once for the whole test run; every
// test runs it as child processes so that kills and signals hit a real
// process, as they would in production.
var notifydBin string

// skipReason is set when the fault tests are switched off.
var skipReason string

func TestMain(m *testing.M) {
	if os.Getenv("NOTIFYD_SKIP_FAULT_TESTS") == "1" {
		skipReason = "NOTIFYD_SKIP_FAULT_TESTS=1"
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "notifyd-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(1)
	}
	notifydBin = filepath.Join(dir, "notifyd")
	build := exec.Command("go", "build", "-o", notifydBin, "github.com/notifyd/notifyd/cmd/notifyd")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "faults: build notifyd: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	runWaitingTestsTogether(faultParallel)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// faultParallel is how many fault tests run at once unless -parallel says
// otherwise. They spend most of their time waiting (for a lease to expire,
// a failover, an outage to end), so running them two at a time (the
// default, GOMAXPROCS) leaves the machine idle for minutes. More than five
// at once, with each process's pool of 5 (newCluster), would take most of
// the test Postgres's 100 connections while another package's tests run.
const faultParallel = 5

// runWaitingTestsTogether sets -test.parallel to n when the command line
// did not set it.
func runWaitingTestsTogether(n int) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		if err := flag.Set("test.parallel", strconv.Itoa(n)); err != nil {
			panic(err)
		}
	}
}

// faultTest marks a long fault test: skipped on request, parallel otherwise
// (each test has its own database, Redis and processes).
func faultTest(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	t.Parallel()
}
