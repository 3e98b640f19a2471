package notifier

// The outbox (local message table): a producer that must send a notification
// if and only if its own database transaction commits writes the
// notification into a table of its own database, in that transaction, with
// EnqueueTx. A Relay moves committed rows to notifyd's queue.

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultOutboxTable is the outbox table's name unless WithOutboxTable says
// otherwise.
const DefaultOutboxTable = "notifyd_outbox"

// ErrInvalidOutboxTable: the name given to WithOutboxTable, MigrateOutbox or
// OutboxSchema is not a plain lower-case SQL identifier.
var ErrInvalidOutboxTable = errors.New("notifier: invalid outbox table name")

//go:embed outbox.sql
var outboxSQL string

// Execer runs one SQL statement. pgx.Tx, *pgx.Conn and *pgxpool.Pool all
// are; EnqueueTx is meant for a pgx.Tx.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// WithOutboxTable names the outbox table EnqueueTx writes and the Relay
// reads (default DefaultOutboxTable). It is a plain identifier, found through
// the connection's search_path; at most 50 bytes so that the index names
// derived from it fit Postgres's 63.
func WithOutboxTable(name string) Option { return func(o *options) { o.outbox = name } }

var tableName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,49}$`)

func outboxTable(name string) (string, error) {
	if name == "" {
		return DefaultOutboxTable, nil
	}
	if !tableName.MatchString(name) {
		return "", fmt.Errorf("%w: %q (want [a-z_][a-z0-9_]*, at most 50 bytes)", ErrInvalidOutboxTable, name)
	}
	return name, nil
}

// OutboxSchema returns the SQL that creates the outbox table named table
// ("" for DefaultOutboxTable), for a producer's own migration tool. The same
// SQL for the default name is the file notifier/outbox.sql in this module;
// `notifyd outbox-schema` prints it.
func OutboxSchema(table string) (string, error) {
	t, err := outboxTable(table)
	if err != nil {
		return "", err
	}
	return strings.ReplaceAll(outboxSQL, DefaultOutboxTable, t), nil
}

// MigrateOutbox creates the outbox table named table ("" for
// DefaultOutboxTable) and its indexes if they do not exist. It is idempotent
// and safe to run from several processes at once. db is the producer's
// database (a pool, a connection, or a transaction of the caller's).
func MigrateOutbox(ctx context.Context, db Execer, table string) error {
	schema, err := OutboxSchema(table)
	if err != nil {
		return err
	}
	t, _ := outboxTable(table)
	// A multi-statement string without arguments runs as one implicit
	// transaction, so the advisory lock serialises concurrent migrators
	// (two CREATE INDEX IF NOT EXISTS can otherwise collide).
	lock := fmt.Sprintf("SELECT pg_advisory_xact_lock(hashtext('notifyd outbox %s'));\n", t)
	if _, err := db.Exec(ctx, lock+schema); err != nil {
		return fmt.Errorf("notifier: migrate outbox %s: %w", t, err)
	}
	return nil
}

// EnqueueTx writes n into the outbox through tx, normally the producer's
// own transaction: the notification is sent if and only if tx commits. It
// returns the notification's id (the same id Notify would return).
//
// It validates n exactly as Notify does and returns the same typed errors
// (*ValidationError, matching ErrInvalidNotification). It does not check that
// the receiver exists: that needs notifyd's Redis, and an outage there must
// not fail the producer's transaction. The relay checks the receiver
// instead, and marks the row dead (with last_error, a log line and the
// notifyd_outbox_failed_total metric) if it is unknown or inactive.
//
// The commit wakes running relays at once (LISTEN/NOTIFY); relays also poll.
// Calling EnqueueTx twice with the same receiver and idempotency key writes
// two rows but yields one notification.
func (c *Client) EnqueueTx(ctx context.Context, tx Execer, n Notification) (string, error) {
	d, err := c.prepare(n)
	if err != nil {
		return "", err
	}
	t, err := outboxTable(c.opts.outbox)
	if err != nil {
		return "", err
	}
	// One round trip: the insert, and a notification to the relays that
	// Postgres delivers only if the transaction commits.
	_, err = tx.Exec(ctx, `WITH ins AS (
		INSERT INTO `+pgx.Identifier{t}.Sanitize()+`
			(notification_id, receiver_id, event_type, idempotency_key, callback_url, payload)
		VALUES ($1, $2, $3, $4, $5, $6)
		RETURNING 1
	) SELECT pg_notify($7, '') FROM ins`,
		d.ID, d.ReceiverID, d.EventType, d.IdempotencyKey, d.CallbackURL, []byte(d.Payload), t)
	if err != nil {
		return "", fmt.Errorf("notifier: write outbox %s: %w", t, err)
	}
	return d.ID.String(), nil
}
