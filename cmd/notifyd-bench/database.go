package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

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

// benchTables are the tables the bench fills before it measures.
var benchTables = []string{"receivers", "notifications", "delivery_attempts"}

// execer is a pool or a single connection.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// analyze refreshes the planner's statistics of the tables that hold rows
// after the bench loaded them. Postgres here runs with autovacuum off (it
// would otherwise analyse them itself as they grow), and notifyd does not
// force index scans: its plans rest on real statistics, as in production.
//
// An empty table is left alone: statistics saying "no rows" make Postgres
// cache generic plans (sequential scans) for notifyd's prepared statements
// that nothing would replace while the table grows, since with autovacuum
// off no later ANALYZE invalidates them. In production autovacuum analyses
// a growing table again, which invalidates those plans; here the measured
// cost was three times the Postgres CPU per notification.
func analyze(ctx context.Context, db execer, tables ...string) error {
	var ids []string
	for _, t := range tables {
		id := pgx.Identifier{t}.Sanitize()
		var rows bool
		if err := db.QueryRow(ctx, `SELECT EXISTS (SELECT FROM `+id+`)`).Scan(&rows); err != nil {
			return fmt.Errorf("analyze %s: %w", t, err)
		}
		if rows {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	if _, err := db.Exec(ctx, `ANALYZE `+strings.Join(ids, ", ")); err != nil {
		return fmt.Errorf("analyze %s: %w", strings.Join(ids, ", "), err)
	}
	return nil
}
