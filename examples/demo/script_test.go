package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/testenv"
)

// demoMark is what scripts/demo.sh marks its database and Redis index with.
const demoMark = "made by notifyd scripts/demo.sh"

// TestDemoScriptTouchesOnlyItsOwn runs scripts/demo.sh --prepare-only (its
// reset, without building or starting anything) against a database and a
// Redis index this test holds: it refuses a database and an index it did not
// make, and empties its own.
func TestDemoScriptTouchesOnlyItsOwn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testenv.Database(t) // migrated by testenv: not the demo's
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	dbName := strings.TrimPrefix(u.Path, "/")
	opt := testenv.Redis(t)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	db0 := redis.NewClient(&redis.Options{Addr: opt.Addr})
	defer db0.Close()
	claim, err := db0.Get(ctx, fmt.Sprintf("notifyd:testenv:db:%d", opt.DB)).Result()
	if err != nil {
		t.Fatal(err)
	}
	prepare := func(holdClaim bool) (int, string) {
		t.Helper()
		cmd := exec.Command("bash", "../../scripts/demo.sh", "--prepare-only")
		cmd.Env = append(os.Environ(), "NOTIFYD_DEMO_DATABASE="+dbName, fmt.Sprintf("NOTIFYD_DEMO_REDIS_DB=%d", opt.DB))
		if holdClaim {
			cmd.Env = append(cmd.Env, "NOTIFYD_DEMO_REDIS_CLAIM="+claim)
		}
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	query := func(sql string) string {
		t.Helper()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var v string
		if err := conn.QueryRow(ctx, sql).Scan(&v); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return v
	}
	ownTable := "coalesce(to_regclass('notifications')::text, 'none')"

	// A database of the demo's name that the demo did not make is kept.
	if code, out := prepare(true); code == 0 || !strings.Contains(out, "database "+dbName+" exists and was not made by the demo") {
		t.Fatalf("foreign database: exit %d\n%s", code, out)
	}
	if got := query("SELECT " + ownTable); got != "notifications" {
		t.Fatalf("the foreign database lost its tables: %s", got)
	}

	// The demo's own database is re-made; a Redis index with keys the demo
	// did not make is kept.
	adminConn, err := pgx.Connect(ctx, testenv.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	defer adminConn.Close(ctx)
	if _, err := adminConn.Exec(ctx, fmt.Sprintf("COMMENT ON DATABASE %s IS '%s'", dbName, demoMark)); err != nil {
		t.Fatal(err)
	}
	rdb.Set(ctx, "someone:else", "data", 0)
	if code, out := prepare(true); code == 0 || !strings.Contains(out, fmt.Sprintf("not using Redis database %d: it holds 1 keys the demo did not make", opt.DB)) {
		t.Fatalf("foreign Redis data: exit %d\n%s", code, out)
	}
	if v, _ := rdb.Get(ctx, "someone:else").Result(); v != "data" {
		t.Fatal("the demo flushed a Redis index it did not make")
	}
	if got := query("SELECT " + ownTable); got != "none" {
		t.Errorf("the demo's own database was not re-made: it has %s", got)
	}

	// An index another run has claimed is refused, whatever it holds.
	rdb.Del(ctx, "someone:else")
	if code, out := prepare(false); code == 0 || !strings.Contains(out, "in use by a test run or another demo") {
		t.Fatalf("claimed index: exit %d\n%s", code, out)
	}

	// An empty index becomes the demo's; its own index is emptied and
	// marked again on the next run.
	for i := range 2 {
		if i > 0 {
			rdb.Set(ctx, "leftover", "from the last demo", 0)
		}
		if code, out := prepare(true); code != 0 {
			t.Fatalf("own database and index: exit %d\n%s", code, out)
		}
		if n, _ := rdb.DBSize(ctx).Result(); n != 1 {
			t.Errorf("the demo's index holds %d keys after its reset, want only its mark", n)
		}
		if v, _ := rdb.Get(ctx, "notifyd:demo:owner").Result(); v != demoMark {
			t.Errorf("mark %q", v)
		}
		if got := query("SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database WHERE datname = current_database()"); got != demoMark {
			t.Errorf("database comment %q", got)
		}
	}
	if v, _ := db0.Get(ctx, fmt.Sprintf("notifyd:testenv:db:%d", opt.DB)).Result(); v != claim {
		t.Errorf("the demo released a claim it did not take: %q", v)
	}
}
