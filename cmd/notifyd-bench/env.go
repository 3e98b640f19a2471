package main

import (
	"bufio"
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/buildinfo"
)

// Env describes where the figures come from.
type Env struct {
	Cores         int    `json:"cores"`
	CPUModel      string `json:"cpu_model"`
	Go            string `json:"go"`
	Notifyd       string `json:"notifyd"`
	Asynq         string `json:"asynq"`
	Postgres      string `json:"postgres"`
	Redis         string `json:"redis"`
	LoadAvgBefore string `json:"loadavg_before"`
	Started       string `json:"started"`
}

func collectEnv(ctx context.Context, dbURL string, rdb *redis.Client) Env {
	e := Env{
		Cores: runtime.NumCPU(), Go: runtime.Version(), Notifyd: notifydVersion(), Asynq: moduleVersion("github.com/hibiken/asynq"),
		CPUModel: cpuModel(), Started: time.Now().UTC().Format(time.RFC3339),
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			e.LoadAvgBefore = strings.Join(f[:3], " ")
		}
	}
	if conn, err := connect(ctx, dbURL); err == nil {
		_ = conn.QueryRow(ctx, `SHOW server_version`).Scan(&e.Postgres)
		conn.Close(ctx)
	}
	if info, err := rdb.Info(ctx, "server").Result(); err == nil {
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
				e.Redis = v
			}
		}
	}
	return e
}

func notifydVersion() string {
	v := buildinfo.Version
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
		if rev != "" && v == "dev" {
			v = "dev+" + rev[:min(12, len(rev))] + dirty
		}
	}
	return v
}

func moduleVersion(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == path {
				return d.Version
			}
		}
	}
	return "unknown"
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
