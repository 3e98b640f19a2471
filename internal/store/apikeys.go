package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// ErrTooManyKeys: the receiver already holds MaxAPIKeysPerReceiver keys.
var ErrTooManyKeys = errors.New("too many api keys")

// MaxAPIKeysPerReceiver bounds a receiver's keys: two cover a rotation, a
// few more a staged one; beyond that keys are being leaked, not rotated.
const MaxAPIKeysPerReceiver = 10

// APIKey is a receiver's API key as listed. The key itself is never stored,
// only its hash (HashAPIKey); Prefix is its first characters.
type APIKey struct {
	ID         uuid.UUID  `json:"id"`
	ReceiverID uuid.UUID  `json:"receiver_id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

// ReceiverKey is what an API key grants: the receiver it belongs to, and
// whether that receiver may still use it.
type ReceiverKey struct {
	KeyID      uuid.UUID
	ReceiverID uuid.UUID
	Active     bool
}

// CreateReceiverWithKey inserts r (see CreateReceiver) and its first key k
// (ID, Name, Prefix) with the key's hash, in one transaction.
func (s *Store) CreateReceiverWithKey(ctx context.Context, r *Receiver, k *APIKey, hash []byte) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("create receiver: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }() // a no-op after Commit
	if err := s.insertReceiver(ctx, tx, r); err != nil {
		return err
	}
	k.ReceiverID = r.ID
	if err := insertAPIKey(ctx, tx, k, hash); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("create receiver: %w", err)
	}
	return nil
}

func insertAPIKey(ctx context.Context, tx pgx.Tx, k *APIKey, hash []byte) error {
	err := tx.QueryRow(ctx, `
		INSERT INTO receiver_api_keys (id, receiver_id, name, key_hash, prefix)
		VALUES ($1, $2, $3, $4, $5) RETURNING created_at`,
		pgID(k.ID), pgID(k.ReceiverID), k.Name, hash, k.Prefix).Scan(&k.CreatedAt)
	if err != nil {
		return fmt.Errorf("insert api key: %w", err)
	}
	return nil
}

// CreateAPIKey adds key k (ID, ReceiverID, Name, Prefix) with its hash.
// It returns ErrNotFound for an unknown receiver and ErrTooManyKeys when the
// receiver holds MaxAPIKeysPerReceiver keys already.
func (s *Store) CreateAPIKey(ctx context.Context, k *APIKey, hash []byte) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("create api key: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	// The receiver's row lock serialises concurrent creates, so the count
	// below cannot be raced past the bound.
	var n int
	err = tx.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM receiver_api_keys WHERE receiver_id = r.id)
		FROM receivers r WHERE r.id = $1 FOR UPDATE`, pgID(k.ReceiverID)).Scan(&n)
	if err != nil {
		return fmt.Errorf("create api key for %s: %w", k.ReceiverID, notFound(err))
	}
	if n >= MaxAPIKeysPerReceiver {
		return fmt.Errorf("create api key for %s: %w", k.ReceiverID, ErrTooManyKeys)
	}
	if err := insertAPIKey(ctx, tx, k, hash); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("create api key: %w", err)
	}
	return nil
}

// ListAPIKeys returns a receiver's keys, oldest first, or ErrNotFound for
// an unknown receiver.
func (s *Store) ListAPIKeys(ctx context.Context, receiverID uuid.UUID) ([]APIKey, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT k.id, r.id, k.name, k.prefix, k.created_at, k.last_used_at
		FROM receivers r LEFT JOIN receiver_api_keys k ON k.receiver_id = r.id
		WHERE r.id = $1 ORDER BY k.created_at, k.id`, pgID(receiverID))
	if err != nil {
		return nil, fmt.Errorf("list api keys of %s: %w", receiverID, err)
	}
	out := []APIKey{}
	found := false
	for rows.Next() {
		found = true
		var k APIKey
		var id *[16]byte
		var name, prefix *string
		var created *time.Time
		if err := rows.Scan(&id, scanID(&k.ReceiverID), &name, &prefix, &created, &k.LastUsedAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list api keys of %s: %w", receiverID, err)
		}
		if id == nil {
			continue // the receiver exists and has no key
		}
		k.ID, k.Name, k.Prefix, k.CreatedAt = *id, *name, *prefix, *created
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list api keys of %s: %w", receiverID, err)
	}
	if !found {
		return nil, fmt.Errorf("list api keys of %s: %w", receiverID, ErrNotFound)
	}
	return out, nil
}

// RevokeAPIKey deletes a receiver's key; ErrNotFound if the receiver has no
// such key.
func (s *Store) RevokeAPIKey(ctx context.Context, receiverID, keyID uuid.UUID) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM receiver_api_keys WHERE id = $1 AND receiver_id = $2`,
		pgID(keyID), pgID(receiverID))
	if err != nil {
		return fmt.Errorf("revoke api key %s: %w", keyID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("revoke api key %s: %w", keyID, ErrNotFound)
	}
	return nil
}

// ReceiverByAPIKey finds the key that hashes to hash and its receiver. It
// reads only what authentication needs, so callers may cache the answer
// without holding the receiver's secrets.
func (s *Store) ReceiverByAPIKey(ctx context.Context, hash []byte) (ReceiverKey, error) {
	var k ReceiverKey
	err := s.pool.QueryRow(ctx, `
		SELECT k.id, k.receiver_id, r.active
		FROM receiver_api_keys k JOIN receivers r ON r.id = k.receiver_id
		WHERE k.key_hash = $1`, hash).Scan(scanID(&k.KeyID), scanID(&k.ReceiverID), &k.Active)
	if err != nil {
		return ReceiverKey{}, fmt.Errorf("receiver by api key: %w", notFound(err))
	}
	return k, nil
}

// TouchAPIKey records that a key was used now. The row is written at most
// once a minute whatever the callers do, so a busy key costs no write per
// request.
func (s *Store) TouchAPIKey(ctx context.Context, keyID uuid.UUID) error {
	return s.touch(ctx, "receiver_api_keys", keyID)
}

// touch sets last_used_at of the row id of table (a constant of ours) to
// now, unless it was set less than a minute ago.
func (s *Store) touch(ctx context.Context, table string, id uuid.UUID) error {
	_, err := s.pool.Exec(ctx, `
		UPDATE `+table+` SET last_used_at = now()
		WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')`, pgID(id))
	if err != nil {
		return fmt.Errorf("touch %s %s: %w", table, id, err)
	}
	return nil
}
