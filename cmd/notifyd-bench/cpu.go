package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/<pid>/stat. It is
// 100 on every Linux architecture Go supports; reading it needs sysconf (cgo).
const clockTicks = 100

// CPU categories of the split. Postgres is counted as the backends of the
// bench's own databases plus the server's auxiliary processes (WAL writer,
// checkpointer, ...); backends of other databases belong to other users of the
// machine and are reported apart, as is the whole machine, so a reader can see
// how noisy the run was.
const (
	cpuNotifyd       = "notifyd"
	cpuReceiver      = "receiver"
	cpuPostgres      = "postgres"
	cpuRedis         = "redis"
	cpuBench         = "bench"
	cpuPostgresOther = "postgres_other_dbs"
)

// cpuOrder is the order the split is printed in.
var cpuOrder = []string{cpuNotifyd, cpuPostgres, cpuRedis, cpuReceiver, cpuBench}

// procKey identifies a process across pid reuse.
type procKey struct {
	pid   int
	start uint64
}

type cpuSnapshot struct {
	at      time.Time
	procs   map[procKey]procSample
	machine uint64 // busy ticks of all CPUs
}

type procSample struct {
	category string
	ticks    uint64
}

// cpuSampler classifies processes into the split's categories.
type cpuSampler struct {
	databases []string // postgres backends of these databases count as ours
	roles     func() map[int]string
	// redisPID, when not 0, is the bench's own redis-server: only it and
	// its children (AOF rewrites) count as Redis; other redis-servers on
	// the machine serve other users.
	redisPID int
}

// clientBackend matches the process title of a Postgres client backend:
// "postgres: 15/main: <user> <database> <host>(<port>) <state>".
var clientBackend = regexp.MustCompile(`^postgres: (?:[^:]+: )?\S+ (\S+) (?:\S+\(\d+\)|\[local\])`)

// autovacuumWorker matches "postgres: 15/main: autovacuum worker <database>".
var autovacuumWorker = regexp.MustCompile(`autovacuum worker (\S+)`)

func (s *cpuSampler) snapshot() cpuSnapshot {
	snap := cpuSnapshot{at: time.Now(), procs: make(map[procKey]procSample), machine: machineBusyTicks()}
	roles := s.roles()
	self := os.Getpid()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range dirs {
		pid, err := strconv.Atoi(filepath.Base(dir))
		if err != nil {
			continue
		}
		var category string
		switch {
		case pid == self:
			category = cpuBench
		case roles[pid] != "":
			category = roles[pid]
		}
		if category == "" {
			comm, err := os.ReadFile(dir + "/comm")
			if err != nil {
				continue
			}
			switch strings.TrimSpace(string(comm)) {
			case "postgres":
				category = s.postgresCategory(dir)
			case "redis-server":
				if s.redisPID != 0 && pid != s.redisPID && parentPID(dir) != s.redisPID {
					continue
				}
				category = cpuRedis
			default:
				continue
			}
		}
		ticks, start, ok := procTicks(dir)
		if !ok {
			continue
		}
		snap.procs[procKey{pid, start}] = procSample{category, ticks}
	}
	return snap
}

func (s *cpuSampler) postgresCategory(dir string) string {
	raw, err := os.ReadFile(dir + "/cmdline")
	if err != nil {
		return cpuPostgres
	}
	title := string(bytes.TrimRight(bytes.ReplaceAll(raw, []byte{0}, []byte{' '}), " "))
	db := ""
	if m := clientBackend.FindStringSubmatch(title); m != nil {
		db = m[1]
	} else if m := autovacuumWorker.FindStringSubmatch(title); m != nil {
		db = m[1]
	} else {
		return cpuPostgres // auxiliary process: serves everyone, counted as ours
	}
	for _, d := range s.databases {
		if d == db {
			return cpuPostgres
		}
	}
	return cpuPostgresOther
}

// procTicks reads utime+stime and the start time from /proc/<pid>/stat.
func procTicks(dir string) (ticks, start uint64, ok bool) {
	raw, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// The command name (field 2) may contain spaces; fields resume after
	// its closing parenthesis, starting with field 3 (state).
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 20 {
		return 0, 0, false
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseUint(f[12], 10, 64) // field 15
	st, err3 := strconv.ParseUint(f[19], 10, 64)    // field 22
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, false
	}
	return utime + stime, st, true
}

// parentPID reads the parent's pid from /proc/<pid>/stat (0 if unknown).
func parentPID(dir string) int {
	raw, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1]) // field 4
	return ppid
}

// machineBusyTicks is the non-idle time of all CPUs from /proc/stat.
func machineBusyTicks() uint64 {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var busy uint64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 7 { // guest time is already counted in user
			break
		}
		n, _ := strconv.ParseUint(v, 10, 64)
		busy += n
	}
	return busy
}

// CPUSplit is CPU time by category over a scenario.
type CPUSplit struct {
	WallSeconds float64 `json:"wall_s"`
	// Seconds of CPU per category; PercentOfCore is seconds/wall×100 (200 %
	// means two cores busy); Share is the category's part of the sum of the
	// categories.
	Seconds       map[string]float64 `json:"cpu_s"`
	PercentOfCore map[string]float64 `json:"pct_of_one_core"`
	Share         map[string]float64 `json:"share_pct"`
	// MachinePercent is the whole machine's busy time, as a percentage of
	// one core, including other users' processes; OthersPercent is the part
	// of it outside the categories (other users: noise in the figures).
	MachinePercent float64 `json:"machine_pct_of_one_core"`
	OthersPercent  float64 `json:"others_pct_of_one_core"`
}

func cpuDelta(before, after cpuSnapshot) *CPUSplit {
	wall := after.at.Sub(before.at).Seconds()
	if wall <= 0 {
		wall = 1e-9
	}
	ticks := make(map[string]uint64)
	for k, a := range after.procs {
		b := before.procs[k] // a process started during the run counts in full
		if a.ticks >= b.ticks {
			ticks[a.category] += a.ticks - b.ticks
		}
	}
	out := &CPUSplit{WallSeconds: wall, Seconds: map[string]float64{}, PercentOfCore: map[string]float64{}, Share: map[string]float64{}}
	var total float64
	for _, c := range append(append([]string(nil), cpuOrder...), cpuPostgresOther) {
		secs := float64(ticks[c]) / clockTicks
		out.Seconds[c] = round(secs, 2)
		out.PercentOfCore[c] = round(secs/wall*100, 1)
		if c != cpuPostgresOther {
			total += secs
		}
	}
	for _, c := range cpuOrder {
		if total > 0 {
			out.Share[c] = round(out.Seconds[c]/total*100, 1)
		}
	}
	out.MachinePercent = round(float64(after.machine-before.machine)/clockTicks/wall*100, 1)
	out.OthersPercent = round(max(0, out.MachinePercent-total/wall*100), 1)
	return out
}

func (c *CPUSplit) String() string {
	if c == nil {
		return "-"
	}
	var b strings.Builder
	for i, k := range cpuOrder {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %.0f%% (%.0f%%)", k, c.PercentOfCore[k], c.Share[k])
	}
	fmt.Fprintf(&b, "; whole machine %.0f%%, of which other processes %.0f%%", c.MachinePercent, c.OthersPercent)
	return b.String()
}
