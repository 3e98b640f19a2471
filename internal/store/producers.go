package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// Producer is a producer token's record: who may ingest and cancel, and for
// which receivers (every one when AllReceivers). The token itself is never
// stored, only its hash (HashAPIKey); Prefix is its first characters.
type Producer struct {
	ID           uuid.UUID   `json:"id"`
	Name         string      `json:"name"`
	Prefix       string      `json:"prefix"`
	AllReceivers bool        `json:"all_receivers"`
	Receivers    []uuid.UUID `json:"receivers"`
	CreatedAt    time.Time   `json:"created_at"`
	LastUsedAt   *time.Time  `json:"last_used_at"`
}

const producerColumns = `id, name, prefix, all_receivers, receivers, created_at, last_used_at`

func scanProducer(row pgx.Row) (*Producer, error) {
	var p Producer
	var receivers []pgtype.UUID
	if err := row.Scan(scanID(&p.ID), &p.Name, &p.Prefix, &p.AllReceivers, &receivers, &p.CreatedAt, &p.LastUsedAt); err != nil {
		return nil, notFound(err)
	}
	p.Receivers = make([]uuid.UUID, len(receivers))
	for i, r := range receivers {
		p.Receivers[i] = r.Bytes
	}
	return &p, nil
}

func pgIDs(ids []uuid.UUID) []pgtype.UUID {
	out := make([]pgtype.UUID, len(ids))
	for i, id := range ids {
		out[i] = pgID(id)
	}
	return out
}

// CreateProducer inserts p (ID, Name, Prefix, AllReceivers, Receivers) with
// its token's hash and fills in CreatedAt. Every listed receiver must exist
// when the producer is created (ErrUnknownReceiver otherwise).
func (s *Store) CreateProducer(ctx context.Context, p *Producer, hash []byte) error {
	ids := pgIDs(p.Receivers)
	err := s.pool.QueryRow(ctx, `
		INSERT INTO producers (id, name, token_hash, prefix, all_receivers, receivers)
		SELECT $1, $2, $3, $4, $5, $6
		WHERE (SELECT count(*) FROM receivers WHERE id = ANY($6)) = cardinality($6)
		RETURNING created_at`,
		pgID(p.ID), p.Name, hash, p.Prefix, p.AllReceivers, ids).Scan(&p.CreatedAt)
	if err != nil {
		if errors.Is(notFound(err), ErrNotFound) {
			return fmt.Errorf("create producer: %w", ErrUnknownReceiver)
		}
		return fmt.Errorf("create producer: %w", err)
	}
	return nil
}

// ListProducers returns every producer record, oldest first. They are few
// (one per producing service), so there is no paging.
func (s *Store) ListProducers(ctx context.Context) ([]*Producer, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+producerColumns+` FROM producers ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list producers: %w", err)
	}
	defer rows.Close()
	out := []*Producer{}
	for rows.Next() {
		p, err := scanProducer(rows)
		if err != nil {
			return nil, fmt.Errorf("list producers: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list producers: %w", err)
	}
	return out, nil
}

// DeleteProducer revokes a producer's token; ErrNotFound for an unknown id.
func (s *Store) DeleteProducer(ctx context.Context, id uuid.UUID) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM producers WHERE id = $1`, pgID(id))
	if err != nil {
		return fmt.Errorf("delete producer %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete producer %s: %w", id, ErrNotFound)
	}
	return nil
}

// ProducerByToken finds the producer whose token hashes to hash.
func (s *Store) ProducerByToken(ctx context.Context, hash []byte) (*Producer, error) {
	p, err := scanProducer(s.pool.QueryRow(ctx, `SELECT `+producerColumns+` FROM producers WHERE token_hash = $1`, hash))
	if err != nil {
		return nil, fmt.Errorf("producer by token: %w", err)
	}
	return p, nil
}

// TouchProducer records that a producer's token was used now, writing the
// row at most once a minute (see TouchAPIKey).
func (s *Store) TouchProducer(ctx context.Context, id uuid.UUID) error {
	return s.touch(ctx, "producers", id)
}

// NotificationReceivers maps each of ids that notifyd has on record to its
// receiver (see RecordedNotifications), so a scoped producer is answered
// only about its own receivers' notifications.
func (s *Store) NotificationReceivers(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]uuid.UUID, error) {
	out := make(map[uuid.UUID]uuid.UUID, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT n.id, n.receiver_id FROM `+keyedNotifications("$1"), pgIDs(ids))
	if err != nil {
		return nil, fmt.Errorf("notification receivers: %w", err)
	}
	var id, receiver uuid.UUID
	if _, err := pgx.ForEachRow(rows, []any{scanID(&id), scanID(&receiver)}, func() error {
		out[id] = receiver
		return nil
	}); err != nil {
		return nil, fmt.Errorf("notification receivers: %w", err)
	}
	return out, nil
}
