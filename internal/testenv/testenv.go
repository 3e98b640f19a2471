// Package testenv gives each test its own real PostgreSQL database and its
// own Redis database index, so integration tests can run in parallel against
// the machine's servers and leave nothing behind.
//
// The servers come from NOTIFYD_TEST_DATABASE_URL (default
// postgres://postgres@127.0.0.1:5432/test) and NOTIFYD_TEST_REDIS_ADDR
// (default 127.0.0.1:6379); scripts/services.sh starts them. ExampleTB lets
// runnable examples, which get no *testing.T, use the same helpers.
//
// It owns the servers' side of test set-up only. It must not import any
// notifyd package but migrations (internal/store's own tests use it), must
// not start notifyd (cmd/notifyd/notifydtest does), and must never flush,
// reconfigure or stop a Redis or Postgres server: it creates and drops its
// own databases and flushes only the Redis index it claimed.
package testenv

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/partition"
	"github.com/notifyd/notifyd/migrations"
)

// DatabaseURL is the admin connection used to create test databases.
func DatabaseURL() string {
	if u := os.Getenv("NOTIFYD_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// RedisAddr is the Redis server tests use.
func RedisAddr() string {
	if a := os.Getenv("NOTIFYD_TEST_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
)

// template creates, once per test binary, a database with every migration
// applied; each test then gets a cheap copy. Its name carries a hash of the
// migrations, so a changed migration yields a new template instead of a
// stale one.
func template(ctx context.Context) (string, error) {
	templateOnce.Do(func() {
		h := sha256.New()
		_ = fs.WalkDir(migrations.Files, ".", func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				b, _ := fs.ReadFile(migrations.Files, path)
				h.Write([]byte(path))
				h.Write(b)
			}
			return nil
		})
		templateName = "notifyd_tmpl_" + hex.EncodeToString(h.Sum(nil))[:12]
		templateErr = withAdmin(ctx, func(conn *pgx.Conn) error {
			// Test binaries of several packages run at once: serialise.
			if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(74110001)`); err != nil {
				return err
			}
			defer conn.Exec(context.Background(), `SELECT pg_advisory_unlock(74110001)`)
			var exists bool
			if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, templateName).Scan(&exists); err != nil {
				return err
			}
			if exists {
				return nil
			}
			building := templateName + "_build"
			_, _ = conn.Exec(ctx, `DROP DATABASE IF EXISTS `+building)
			if _, err := conn.Exec(ctx, `CREATE DATABASE `+building); err != nil {
				return err
			}
			if err := migrations.UpQuiet(ctx, withDatabase(DatabaseURL(), building)); err != nil {
				return err
			}
			// Rename only when complete, so a crash never leaves a half-built template.
			_, err := conn.Exec(ctx, `ALTER DATABASE `+building+` RENAME TO `+templateName)
			return err
		})
	})
	return templateName, templateErr
}

func withAdmin(ctx context.Context, fn func(*pgx.Conn) error) error {
	conn, err := pgx.Connect(ctx, DatabaseURL())
	if err != nil {
		return fmt.Errorf("testenv: connect to %s (run scripts/services.sh): %w", DatabaseURL(), err)
	}
	defer conn.Close(context.Background())
	return fn(conn)
}

func withDatabase(rawURL, name string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		panic(err)
	}
	u.Path = "/" + name
	return u.String()
}

var dbSeq struct {
	sync.Mutex
	n int
}

// Database creates an empty, fully migrated database for t and returns its
// URL. It is dropped when the test ends.
func Database(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tmpl, err := template(ctx)
	if err != nil {
		t.Fatalf("testenv: migrations template: %v", err)
	}
	dbSeq.Lock()
	dbSeq.n++
	name := fmt.Sprintf("notifyd_t_%d_%d_%d", os.Getpid(), dbSeq.n, time.Now().UnixNano()%1e6)
	dbSeq.Unlock()
	err = withAdmin(ctx, func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s TEMPLATE %s STRATEGY FILE_COPY`, name, tmpl))
		return err
	})
	if err != nil {
		t.Fatalf("testenv: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = withAdmin(ctx, func(conn *pgx.Conn) error {
			_, err := conn.Exec(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`)
			return err
		})
	})
	// The template keeps the partitions of the day it was built: today's
	// and those ahead are made here, as the scheduler would.
	if err := partitionsAhead(ctx, withDatabase(DatabaseURL(), name)); err != nil {
		t.Fatalf("testenv: partitions: %v", err)
	}
	return withDatabase(DatabaseURL(), name)
}

func partitionsAhead(ctx context.Context, dsn string) error {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	now := time.Now()
	_, err = partition.Ensure(ctx, db, now, now)
	return err
}

// Pool is Database plus a connection pool closed at the end of the test.
func Pool(t testing.TB) (string, *pgxpool.Pool) {
	t.Helper()
	dsn := Database(t)
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatalf("testenv: pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return dsn, pool
}

// redisDBs is how many logical databases a default Redis has. Index 0 is
// left to humans; tests claim 1..15.
const redisDBs = 16

// Redis claims a Redis database index for t, flushes it, and flushes and
// releases it when the test ends. Claims are keys in DB 0 with a TTL, so they
// work across test binaries running at once and expire if a binary crashes.
// When every index is taken it waits.
func Redis(t testing.TB) *redis.Options {
	t.Helper()
	ctx := context.Background()
	admin := redis.NewClient(&redis.Options{Addr: RedisAddr()})
	defer admin.Close()
	token := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	deadline := time.Now().Add(5 * time.Minute)
	for {
		for db := 1; db < redisDBs; db++ {
			key := fmt.Sprintf("notifyd:testenv:db:%d", db)
			ok, err := admin.SetNX(ctx, key, token, 10*time.Minute).Result()
			if err != nil {
				t.Fatalf("testenv: redis at %s (run scripts/services.sh): %v", RedisAddr(), err)
			}
			if !ok {
				continue
			}
			opt := &redis.Options{Addr: RedisAddr(), DB: db}
			flush(t, opt)
			t.Cleanup(func() {
				flush(t, opt)
				c := redis.NewClient(&redis.Options{Addr: RedisAddr()})
				defer c.Close()
				if v, _ := c.Get(context.Background(), key).Result(); v == token {
					c.Del(context.Background(), key)
				}
			})
			return opt
		}
		if time.Now().After(deadline) {
			t.Fatal("testenv: no free Redis database index")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func flush(t testing.TB, opt *redis.Options) {
	c := redis.NewClient(opt)
	defer c.Close()
	if err := c.FlushDB(context.Background()).Err(); err != nil && !strings.Contains(err.Error(), "closed") {
		t.Logf("testenv: flush redis db %d: %v", opt.DB, err)
	}
}
