package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/migrations"
)

// prepareQueryDB creates (or reuses, with --query-db) the query database and
// its receivers. data.rows is 0 when rows must still be generated.
func (b *bench) prepareQueryDB(ctx context.Context, name string, r *QueryResult) (string, *queryData, error) {
	cfg := b.cfg
	data := &queryData{}
	exists := false
	if cfg.queryDB != "" {
		var err error
		if exists, err = databaseExists(ctx, cfg.databaseURL, name); err != nil {
			return "", nil, err
		}
	}
	var dbURL string
	var err error
	if exists {
		if dbURL, err = withDatabase(cfg.databaseURL, name); err != nil {
			return "", nil, err
		}
		if err := migrations.UpQuiet(ctx, plainURL(dbURL)); err != nil {
			return "", nil, err
		}
		reused, err := b.reuseQueryData(ctx, dbURL)
		if err != nil {
			return "", nil, err
		}
		if reused != nil {
			b.prog.note(fmt.Sprintf("query: reusing %s rows in database %s", thousands(reused.rows), name))
			r.Reused = true
			return dbURL, reused, nil
		}
		b.prog.note(fmt.Sprintf("query: database %s does not hold %s generated rows; recreating it", name, thousands(int64(cfg.queryRows))))
	}
	if dbURL, err = createDatabase(ctx, cfg.databaseURL, name); err != nil {
		return "", nil, err
	}
	st, err := store.Open(ctx, dbURL)
	if err != nil {
		return "", nil, err
	}
	defer st.Close()
	var specs []receiverSpec
	for i := range cfg.queryReceivers {
		specs = append(specs, receiverSpec{name: fmt.Sprintf("query-%03d", i), url: "http://127.0.0.1:9/unused"})
	}
	if data.receivers, err = createReceivers(ctx, st, specs); err != nil {
		return "", nil, err
	}
	return dbURL, data, nil
}

// reuseQueryData checks a kept query database and gives its receivers fresh
// API keys (only hashes are stored). nil when it does not match the flags.
func (b *bench) reuseQueryData(ctx context.Context, dbURL string) (*queryData, error) {
	conn, err := connect(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	var count int64
	var from, to *time.Time
	if err := conn.QueryRow(ctx, `SELECT count(*), min(created_at), max(created_at) FROM notifications`).Scan(&count, &from, &to); err != nil {
		return nil, err
	}
	rows, err := conn.Query(ctx, `SELECT id FROM receivers WHERE name LIKE 'query-%' ORDER BY name`)
	if err != nil {
		return nil, err
	}
	recvIDs, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, err
	}
	if count != int64(b.cfg.queryRows) || len(recvIDs) != b.cfg.queryReceivers || from == nil {
		return nil, nil
	}
	data := &queryData{rows: count, from: *from, to: *to}
	for _, id := range recvIDs {
		key := newAPIKey()
		if _, err := conn.Exec(ctx, `UPDATE receiver_api_keys SET key_hash = $2 WHERE receiver_id = $1`, id, store.HashAPIKey(key)); err != nil {
			return nil, err
		}
		data.receivers = append(data.receivers, benchReceiver{ID: id, APIKey: key})
	}
	return data, nil
}

// keyDef is a constraint or index to drop for the bulk load and recreate
// after it, exactly as the migrations defined it.
type keyDef struct {
	table, name, def, kind string // kind: p, u, f (constraints) or i (index)
}

var keyTables = []string{"notifications", "delivery_attempts"}

func dropKeys(ctx context.Context, conn *pgx.Conn) ([]keyDef, error) {
	var defs []keyDef
	rows, err := conn.Query(ctx, `
		SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), contype::text
		FROM pg_constraint
		WHERE (conrelid = ANY($1::regclass[]) AND contype IN ('p', 'u', 'f'))
		   OR (confrelid = ANY($1::regclass[]) AND contype = 'f')`, keyTables)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var d keyDef
		if err := rows.Scan(&d.table, &d.name, &d.def, &d.kind); err != nil {
			rows.Close()
			return nil, err
		}
		defs = append(defs, d)
	}
	rows.Close()
	rows, err = conn.Query(ctx, `
		SELECT indrelid::regclass::text, indexrelid::regclass::text, pg_get_indexdef(indexrelid)
		FROM pg_index i
		WHERE indrelid = ANY($1::regclass[])
		  AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.contype IN ('p', 'u', 'x'))`, keyTables)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		d := keyDef{kind: "i"}
		if err := rows.Scan(&d.table, &d.name, &d.def); err != nil {
			rows.Close()
			return nil, err
		}
		defs = append(defs, d)
	}
	rows.Close()
	// Foreign keys first (they depend on the keys), then keys, then indexes.
	for _, kind := range []string{"f", "u", "p", "i"} {
		for _, d := range defs {
			if d.kind != kind {
				continue
			}
			var sql string
			if kind == "i" {
				sql = `DROP INDEX ` + d.name
			} else {
				sql = `ALTER TABLE ` + d.table + ` DROP CONSTRAINT ` + pgx.Identifier{d.name}.Sanitize()
			}
			if _, err := conn.Exec(ctx, sql); err != nil {
				return nil, fmt.Errorf("%s: %w", sql, err)
			}
		}
	}
	return defs, nil
}

func restoreKeys(ctx context.Context, conn *pgx.Conn, defs []keyDef, prog *progress) error {
	if _, err := conn.Exec(ctx, `SET maintenance_work_mem = '512MB'`); err != nil {
		return err
	}
	n := 0
	for _, kind := range []string{"p", "u", "i", "f"} {
		for _, d := range defs {
			if d.kind != kind {
				continue
			}
			n++
			prog.step("query: rebuilding %s (%d of %d)", d.name, n, len(defs))
			var sql string
			if kind == "i" {
				// A partitioned table's index reads "ON ONLY": built so,
				// it would have no partitions.
				sql = strings.Replace(d.def, " ON ONLY ", " ON ", 1)
			} else {
				sql = `ALTER TABLE ` + d.table + ` ADD CONSTRAINT ` + pgx.Identifier{d.name}.Sanitize() + ` ` + d.def
			}
			if _, err := conn.Exec(ctx, sql); err != nil {
				return fmt.Errorf("%s: %w", sql, err)
			}
		}
	}
	if n != len(defs) {
		return errors.New("not every index was rebuilt")
	}
	return nil
}
