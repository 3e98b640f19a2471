// Package migrations holds notifyd's PostgreSQL schema as numbered SQL files,
// embedded in the binary so that `notifyd migrate` needs nothing on disk.
//
// A migration that has shipped must not be edited: add a new numbered file.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io"
	"log/slog"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/notifyd/notifyd/internal/partition"
)

// Files holds the SQL migrations.
//
// partitioning/ holds the SQL of the Go migration 00010 (partition.go); goose
// reads only the top directory.
//
//go:embed *.sql partitioning/*.sql
var Files embed.FS

// Up applies every migration not yet applied. It is safe to call concurrently
// from several processes: goose serialises them with a Postgres advisory lock.
func Up(ctx context.Context, databaseURL string, logger *slog.Logger) error {
	db, err := sql.Open("pgx", databaseURL)
	if err != nil {
		return fmt.Errorf("migrate: open: %w", err)
	}
	defer db.Close()
	return up(ctx, db, logger)
}

func up(ctx context.Context, db *sql.DB, logger *slog.Logger) error {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("migrate: locker: %w", err)
	}
	logMoves(logger)
	provider, err := NewProvider(db, goose.WithSessionLocker(locker), goose.WithSlog(logger))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	results, err := provider.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate: up: %w", err)
	}
	for _, r := range results {
		logger.Info("migration applied", "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
	}
	// Every migrate also makes sure the daily partitions ahead exist (the
	// scheduler's retention job keeps them; a deploy may come first).
	var now time.Time
	if err := db.QueryRowContext(ctx, `SELECT now()`).Scan(&now); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	created, err := partition.Ensure(ctx, db, now, now)
	if err != nil {
		return fmt.Errorf("migrate: partitions ahead: %w", err)
	}
	if len(created) > 0 {
		logger.Info("partitions created ahead", "partitions", created)
	}
	return nil
}

// NewProvider is goose's provider of notifyd's migrations, the SQL files and
// the Go ones (00010), for tests that move between versions.
func NewProvider(db *sql.DB, opts ...goose.ProviderOption) (*goose.Provider, error) {
	opts = append(opts, goose.WithGoMigrations(partitionMigration()), goose.WithDisableGlobalRegistry(true))
	return goose.NewProvider(goose.DialectPostgres, db, Files, opts...)
}

// discard is a logger for callers that do not care.
var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// UpQuiet applies migrations without logging.
func UpQuiet(ctx context.Context, databaseURL string) error { return Up(ctx, databaseURL, discard) }
