package main

import (
	"context"
	"fmt"
	"testing"

	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/testenv"
)

// TestAnalyzeGivesStatistics proves what startNotifyd relies on: after the
// bench loads rows, analyze leaves the planner real row counts for every
// table it fills (Postgres here runs with autovacuum off, so nothing else
// would), and leaves empty tables unanalysed (see analyze).
func TestAnalyzeGivesStatistics(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Postgres")
	}
	ctx := context.Background()
	dsn, pool := testenv.Pool(t)
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var specs []receiverSpec
	for i := range 3 {
		specs = append(specs, receiverSpec{name: fmt.Sprintf("r-%d", i), url: "http://127.0.0.1:9/unused"})
	}
	if _, err := createReceivers(ctx, st, specs); err != nil {
		t.Fatal(err)
	}
	reltuples := func(table string) float64 {
		t.Helper()
		var n float64
		if err := pool.QueryRow(ctx, `SELECT reltuples FROM pg_class WHERE oid = $1::regclass`, table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// -1 is "never analysed or vacuumed": the planner guesses from the size.
	for _, table := range benchTables {
		if n := reltuples(table); n != -1 {
			t.Fatalf("%s: reltuples %v before ANALYZE, want -1 (is autovacuum on?)", table, n)
		}
	}
	if err := analyze(ctx, pool, benchTables...); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"receivers": 3, "notifications": -1, "delivery_attempts": -1}
	for _, table := range benchTables {
		if n := reltuples(table); n != want[table] {
			t.Errorf("%s: reltuples %v after ANALYZE, want %v", table, n, want[table])
		}
	}
	if err := analyze(ctx, pool, "no_such_table"); err == nil {
		t.Error("analyze of a missing table: no error")
	}
}
