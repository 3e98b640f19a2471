package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/notifyd/notifyd/cmd/notifyd/notifydtest"
	"github.com/notifyd/notifyd/internal/testenv"
	"github.com/notifyd/notifyd/query/client"
	"github.com/notifyd/notifyd/query/webhook"
	"github.com/notifyd/notifyd/query/webhook/once"
)

// One handler, written once, takes both the callbacks and what reconcile
// finds; with once.PgxHandler each notification changes the business once,
// whichever way it came first.
func TestReconcileAndCallbackShareOneHandler(t *testing.T) {
	t.Parallel()
	s := notifydtest.Start(t)
	_, pool := testenv.Pool(t) // the merchant's database
	ctx := context.Background()
	if _, err := pool.Exec(ctx, once.Default.Schema()+`CREATE TABLE ledger (notification_id text NOT NULL)`); err != nil {
		t.Fatal(err)
	}

	srv := httptest.NewUnstartedServer(nil)
	t.Cleanup(srv.Close)
	r := s.CreateReceiver("http://"+srv.Listener.Addr().String()+"/notifyd", map[string]any{"retry": map[string]any{"max_attempts": 1}})
	v, err := webhook.NewVerifier(r.SigningSecret)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	processed := map[string][]bool{} // id → Reconciled of each business call
	handler := once.PgxHandler(v, pool, func(ctx context.Context, tx pgx.Tx, e *webhook.Event) error {
		mu.Lock()
		processed[e.ID] = append(processed[e.ID], e.Reconciled)
		mu.Unlock()
		_, err := tx.Exec(ctx, `INSERT INTO ledger VALUES ($1)`, e.ID)
		return err
	})
	// In front of the handler: the bodies each way brought, and an outage
	// of the public callback path (reconcile comes from inside).
	var down atomic.Bool
	bodies := map[string]map[bool]map[string]any{} // id → reconciled → envelope
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		reconciled := req.Header.Get(webhook.HeaderReconcile) == "1"
		if down.Load() && !reconciled {
			http.Error(w, "load balancer: no backend", http.StatusBadGateway)
			return
		}
		raw, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(strings.NewReader(string(raw)))
		var env map[string]any
		_ = json.Unmarshal(raw, &env)
		mu.Lock()
		if bodies[req.Header.Get("webhook-id")] == nil {
			bodies[req.Header.Get("webhook-id")] = map[bool]map[string]any{}
		}
		bodies[req.Header.Get("webhook-id")][reconciled] = env
		mu.Unlock()
		handler.ServeHTTP(w, req)
	})
	srv.Start()

	down.Store(true)
	missed := sendMany(t, s, r.ID, "missed", 3)
	s.WaitStatus(30*time.Second, client.StatusFailed, missed...)
	down.Store(false)
	pushed := sendMany(t, s, r.ID, "pushed", 3)
	s.WaitStatus(30*time.Second, client.StatusDelivered, pushed...)

	// Reconcile hands all six to the same URL: the three pushed ones are
	// duplicates, the three missed ones are processed now.
	ckpt := filepath.Join(t.TempDir(), "notifyd.ckpt")
	code, _, errOut := reconcile(t, s, r, ckpt, "--handler-url", srv.URL+"/notifyd")
	if code != 0 || !strings.Contains(errOut, "reconcile: done: 6 handled") {
		t.Fatalf("reconcile: exit %d\n%s", code, errOut)
	}
	// A second run from scratch, and a redelivery: duplicates all.
	if code, _, errOut := reconcile(t, s, r, filepath.Join(t.TempDir(), "again.ckpt"), "--handler-url", srv.URL+"/notifyd"); code != 0 {
		t.Fatalf("second reconcile: exit %d\n%s", code, errOut)
	}
	s.Call(http.MethodPost, "/v1/notifications/"+missed[0]+"/redeliver", r.APIKey, nil, http.StatusAccepted, nil)
	s.WaitStatus(30*time.Second, client.StatusDelivered, missed[0])
	testenv.WaitFor(t, 30*time.Second, "the missed notification's reconciled delivery", func() bool { mu.Lock(); defer mu.Unlock(); return bodies[missed[0]][false] != nil })

	mu.Lock()
	defer mu.Unlock()
	for _, tc := range []struct {
		ids        []string
		reconciled bool
	}{{missed, true}, {pushed, false}} {
		for _, id := range tc.ids {
			if got := processed[id]; len(got) != 1 || got[0] != tc.reconciled {
				t.Errorf("%s: business calls (reconciled?) %v, want exactly one, reconciled=%v", id, got, tc.reconciled)
			}
		}
	}
	var rows int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM ledger`).Scan(&rows); err != nil || rows != 6 {
		t.Errorf("ledger has %d rows (%v), want 6", rows, err)
	}
	// The envelope is the same whichever way it came.
	for _, id := range append(pushed, missed[0]) {
		if cb, rc := bodies[id][false], bodies[id][true]; cb == nil || !reflect.DeepEqual(cb, rc) {
			t.Errorf("%s: callback envelope %v, reconciled envelope %v", id, cb, rc)
		}
	}
}
