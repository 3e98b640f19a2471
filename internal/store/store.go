// Package store is notifyd's PostgreSQL data layer: every SQL statement the
// service runs lives here, behind methods named for what they mean, and so
// does the choice of how each is planned (see customPlan).
//
// It must not reach Redis or the task queue, nor speak HTTP, nor decide
// delivery policy (when to retry, what a receiver's answer means): callers pass the
// outcome in and get rows out. It must not change a session's settings: the
// pool may sit behind a transaction-mode PgBouncer (statement_timeout is a
// startup parameter the operator can turn off; see Options).
package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/secretbox"
)

// Sentinel errors callers branch on.
var (
	ErrNotFound = errors.New("not found")
	// ErrUnknownReceiver: a notification names a receiver that does not exist.
	ErrUnknownReceiver = errors.New("unknown receiver")
)

// Store wraps a connection pool.
type Store struct {
	pool *pgxpool.Pool
	// secrets seals signing secrets at rest (nil: stored as given; see secrets.go).
	secrets *secretbox.Keyring
}

// Options tune Open.
type Options struct {
	// StatementTimeout, if not zero, is sent as the statement_timeout
	// startup parameter (unless the URL sets one), so Postgres itself ends
	// any statement that runs longer, whoever is waiting for it.
	//
	// A startup parameter rather than a SET per transaction (a round trip
	// on every statement) or per session (which a transaction-mode
	// PgBouncer would leak to other clients). A transaction-mode PgBouncer
	// refuses this parameter at connect unless it is listed in its
	// ignore_startup_parameters; there, set 0 and put the timeout on the
	// role instead (ALTER ROLE notifyd SET statement_timeout = '60s').
	//
	// Request deadlines (context) end the wait in notifyd, but pgx ends a
	// cancelled query by closing its connection, which Postgres notices
	// only when it next writes to it; this is what stops the work.
	StatementTimeout time.Duration
}

// Open connects to Postgres with no statement_timeout of notifyd's own
// (tests, tools); the service uses OpenWithOptions.
func Open(ctx context.Context, databaseURL string) (*Store, error) {
	return OpenWithOptions(ctx, databaseURL, Options{})
}

// OpenWithOptions connects to Postgres. The pool is sized for a worker's
// batching recorder plus the API; override with pool_max_conns in the URL.
func OpenWithOptions(ctx context.Context, databaseURL string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "notifyd"
	}
	if opts.StatementTimeout > 0 && cfg.ConnConfig.RuntimeParams["statement_timeout"] == "" {
		cfg.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(opts.StatementTimeout.Milliseconds(), 10)
	}
	if !strings.Contains(databaseURL, "pool_max_conns") {
		// pgxpool's default (max(4, cores)) starves a worker whose handlers
		// each need a connection for a moment. 16 keeps a typical
		// deployment (a few workers, two APIs, a scheduler) well under
		// Postgres's default max_connections of 100.
		cfg.MaxConns = 16
	}
	// No other session settings (enable_seqscan, plan_cache_mode, ...): a
	// transaction-mode PgBouncer rejects them as startup parameters, and they
	// would bend every statement's plan to suit one. See customPlan.
	cfg.MaxConnIdleTime = 5 * time.Minute
	cfg.HealthCheckPeriod = 15 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect database: %w", err)
	}
	return &Store{pool: pool}, nil
}

// New wraps an existing pool (tests, embedding).
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Pool exposes the pool for components that run their own statements in
// transactions they own (migrations, maintenance jobs).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Ping checks that the database answers (readiness).
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// Close releases every connection.
func (s *Store) Close() { s.pool.Close() }

func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// IsTransient reports whether err is worth retrying: the database is
// unreachable, restarting or shedding load, as opposed to a bad statement.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", "53", "57", "40": // connection, resources, operator intervention (shutdown), serialization
			return true
		}
		return false
	}
	// Dial errors, resets, EOFs and pool timeouts surface without a PgError.
	return !errors.Is(err, context.Canceled)
}
