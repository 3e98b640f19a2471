package migrations_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/notifyd/notifyd/internal/testenv"
	"github.com/notifyd/notifyd/migrations"
)

// databaseAt is a test database of its own migrated down to version, as a
// database the previous notifyd left: its URL, a connection (closed at the
// test's end) and the migrations provider to go up again with.
func databaseAt(t *testing.T, version int64) (dbURL string, db *sql.DB, p *goose.Provider) {
	t.Helper()
	dbURL = testenv.Database(t)
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if p, err = migrations.NewProvider(db); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(context.Background(), version); err != nil {
		t.Fatalf("down to %d: %v", version, err)
	}
	return dbURL, db, p
}
