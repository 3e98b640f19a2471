package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/buildinfo"
	"github.com/notifyd/notifyd/internal/registry"
	"github.com/notifyd/notifyd/internal/retry"
	"github.com/notifyd/notifyd/internal/signing"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/migrations"
)

// withDatabase returns rawURL pointing at database name (query kept).
func withDatabase(rawURL, name string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("database url: %w", err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

// plainURL leaves out pgxpool settings (pool_max_conns=…, which the bench
// passes through to notifyd's store.Open): a single connection, or the
// migrations' database/sql driver, refuse them as unknown server parameters.
func plainURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	q := u.Query()
	for k := range q {
		if strings.HasPrefix(k, "pool_") {
			q.Del(k)
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func connect(ctx context.Context, rawURL string) (*pgx.Conn, error) {
	return pgx.Connect(ctx, plainURL(rawURL))
}

func adminExec(ctx context.Context, adminURL, sql string) error {
	conn, err := connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect %s (run scripts/services.sh): %w", redactURL(adminURL), err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable url)"
	}
	return u.Redacted()
}

// createDatabase creates a fresh database and applies the migrations.
func createDatabase(ctx context.Context, adminURL, name string) (string, error) {
	if err := adminExec(ctx, adminURL, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
		return "", fmt.Errorf("drop old %s: %w", name, err)
	}
	if err := adminExec(ctx, adminURL, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	dbURL, err := withDatabase(adminURL, name)
	if err != nil {
		return "", err
	}
	if err := migrations.UpQuiet(ctx, plainURL(dbURL)); err != nil {
		return "", err
	}
	return dbURL, nil
}

func dropDatabase(adminURL, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return adminExec(ctx, adminURL, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`)
}

// databaseExists reports whether name exists on the server.
func databaseExists(ctx context.Context, adminURL, name string) (bool, error) {
	conn, err := connect(ctx, adminURL)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	var ok bool
	err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, name).Scan(&ok)
	return ok, err
}

// ---------------------------------------------------------------- redis

// claimRedisDB takes the index the way internal/testenv does (a key in DB
// 0 with a TTL), so that the bench never flushes a database a test is using
// and tests never pick the bench's. It waits while the index is taken and
// returns a release function; the claim is refreshed until released.
func claimRedisDB(ctx context.Context, addr string, db int, note func(string)) (func(), error) {
	admin := redis.NewClient(&redis.Options{Addr: addr})
	key := fmt.Sprintf("notifyd:testenv:db:%d", db)
	token := fmt.Sprintf("bench-%d-%d", os.Getpid(), time.Now().UnixNano())
	deadline := time.Now().Add(3 * time.Minute)
	noted := false
	for {
		ok, err := admin.SetNX(ctx, key, token, 2*time.Minute).Result()
		if err != nil {
			admin.Close()
			return nil, fmt.Errorf("redis at %s (run scripts/services.sh): %w", addr, err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			admin.Close()
			return nil, fmt.Errorf("redis db %d is claimed by someone else (key %s); pick another with --redis-db", db, key)
		}
		if !noted {
			note(fmt.Sprintf("redis db %d is in use by a test; waiting for it (or pass --redis-db)", db))
			noted = true
		}
		select {
		case <-ctx.Done():
			admin.Close()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				admin.Expire(context.Background(), key, 2*time.Minute)
			}
		}
	}()
	return func() {
		close(stop)
		<-done
		if v, _ := admin.Get(context.Background(), key).Result(); v == token {
			admin.Del(context.Background(), key)
		}
		admin.Close()
	}, nil
}

// ---------------------------------------------------------------- versions

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

// ---------------------------------------------------------------- receivers

// benchReceiver is a receiver the bench created, with its API key.
type benchReceiver struct {
	ID     uuid.UUID
	APIKey string
}

type receiverSpec struct {
	name    string
	url     string
	retry   *retry.Policy
	timeout time.Duration
}

func newAPIKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "nfy_" + base64.RawURLEncoding.EncodeToString(b)
}

// createReceivers inserts receivers straight into Postgres (as the admin API
// would) and publishes them to the Redis registry the Go client checks.
func createReceivers(ctx context.Context, st *store.Store, specs []receiverSpec) ([]benchReceiver, error) {
	out := make([]benchReceiver, 0, len(specs))
	for _, sp := range specs {
		secret, err := signing.NewSecret()
		if err != nil {
			return nil, err
		}
		key := newAPIKey()
		r := &store.Receiver{ID: uuid.New(), Name: sp.name, CallbackURL: sp.url, SigningSecret: secret, Retry: sp.retry, Timeout: sp.timeout}
		if err := st.CreateReceiver(ctx, r, store.HashAPIKey(key)); err != nil {
			return nil, err
		}
		out = append(out, benchReceiver{ID: r.ID, APIKey: key})
	}
	return out, nil
}

// syncRegistry publishes every receiver to Redis, as notifyd processes do
// at start; needed again after each FLUSHDB.
func syncRegistry(ctx context.Context, st *store.Store, rdb redis.UniversalClient) error {
	states, err := st.ListReceiverStates(ctx)
	if err != nil {
		return err
	}
	if len(states) == 0 {
		return errors.New("no receivers")
	}
	return registry.Sync(ctx, rdb, states)
}
