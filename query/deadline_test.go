package query

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/testenv"
)

// lockNotifications holds an exclusive lock on the notifications table until
// the test ends, so any statement reading it waits: a slow query, for real.
func lockNotifications(t *testing.T, dsn string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE notifications IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tx.Rollback(ctx)
		conn.Close(ctx)
	})
}

// TestSlowQueryAnswers503 runs a listing against a locked table. Either the
// request deadline or Postgres's statement_timeout ends it, and the API
// answers 503 with a JSON error that does not repeat the cause.
func TestSlowQueryAnswers503(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name             string
		requestTimeout   time.Duration
		statementTimeout time.Duration
	}{
		{"request deadline", 1 * time.Second, 0},
		{"statement_timeout", 30 * time.Second, 1 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dsn := testenv.Database(t)
			base := newTestAPI(t) // its Redis and queue; the store is replaced below
			st, err := store.OpenWithOptions(context.Background(), dsn, store.Options{StatementTimeout: tt.statementTimeout})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(st.Close)
			base.store = st
			_, url := base.serveWith(func(c *Config) { c.RequestTimeout = tt.requestTimeout })
			lockNotifications(t, dsn)
			start := time.Now()
			resp, body := rawGet(t, url+"/v1/notifications", testAdminToken, "")
			took := time.Since(start)
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("status %d %s, want 503", resp.StatusCode, body)
			}
			if e := apiErr(t, body); e.Code != "timeout" {
				t.Errorf("code %q, want timeout", e.Code)
			}
			for _, leak := range []string{"cancel", "deadline", "statement", "context", "SQLSTATE", "57014"} {
				if strings.Contains(string(body), leak) {
					t.Errorf("body leaks %q: %s", leak, body)
				}
			}
			if took > 10*time.Second {
				t.Errorf("took %s: the timeout did not end the request", took)
			}
			t.Logf("answered 503 after %s", took.Round(time.Millisecond))
		})
	}
}
