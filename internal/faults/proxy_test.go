package faults

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/notifyd/notifyd/internal/fleet"
	"github.com/notifyd/notifyd/internal/testenv"
)

// TestProxyCutAndRestore checks the proxy the outage test relies on: a cut
// drops live connections and refuses new ones, a restore lets them through.
func TestProxyCutAndRestore(t *testing.T) {
	t.Parallel()
	dbURL := testenv.Database(t)
	p, err := fleet.NewProxy(dbHostPort(t, dbURL))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	viaProxy := withHost(t, dbURL, p.Addr())
	ping := func(conn *pgx.Conn) error {
		var one int
		return conn.QueryRow(ctx, `SELECT 1`).Scan(&one)
	}

	live, err := pgx.Connect(ctx, viaProxy)
	if err != nil {
		t.Fatalf("connect through the proxy: %v", err)
	}
	defer live.Close(context.Background())
	if err := ping(live); err != nil {
		t.Fatalf("query through the proxy: %v", err)
	}

	p.Cut()
	if err := ping(live); err == nil {
		t.Error("a live connection still works after Cut")
	}
	if c, err := pgx.Connect(ctx, viaProxy); err == nil {
		c.Close(context.Background())
		t.Error("a new connection succeeded while cut")
	}
	if p.Refused() == 0 {
		t.Error("Refused() = 0 after a refused connection")
	}

	p.Restore()
	again, err := pgx.Connect(ctx, viaProxy)
	if err != nil {
		t.Fatalf("connect after Restore: %v", err)
	}
	defer again.Close(context.Background())
	if err := ping(again); err != nil {
		t.Fatalf("query after Restore: %v", err)
	}
}
