package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/notifyd/notifyd/internal/secretbox"
)

// SetSecretKeys makes the store seal every signing secret it writes with
// keys' current key and open sealed ones it reads (NOTIFYD_SECRET_KEYS).
// Without keys secrets are written as given (development) and only
// plaintext ones can be read. Call it before the store is shared.
func (s *Store) SetSecretKeys(keys *secretbox.Keyring) { s.secrets = keys }

// The receiver id is the associated data: a sealed secret copied onto
// another receiver's row does not open.
func secretAAD(id uuid.UUID) []byte { return id[:] }

// sealSecret is what goes into a secret column for receiver id.
func (s *Store) sealSecret(id uuid.UUID, secret string) (string, error) {
	if s.secrets.Len() == 0 || secret == "" {
		return secret, nil
	}
	return s.secrets.Seal(secret, secretAAD(id))
}

// openSecrets replaces r's stored secrets with their plaintext.
func (s *Store) openSecrets(r *Receiver) error {
	var err error
	if r.SigningSecret, err = s.secrets.Open(r.SigningSecret, secretAAD(r.ID)); err != nil {
		return fmt.Errorf("receiver %s: signing secret: %w", r.ID, err)
	}
	if r.PreviousSecret, err = s.secrets.Open(r.PreviousSecret, secretAAD(r.ID)); err != nil {
		return fmt.Errorf("receiver %s: previous signing secret: %w", r.ID, err)
	}
	return nil
}

// ReencryptResult is what one ReencryptSecrets run did.
type ReencryptResult struct {
	Receivers int // rows looked at
	Resealed  int // rows written: plaintext or sealed under an older key
}

// ReencryptSecrets seals every receiver's secrets with the current key:
// plaintext ones and those sealed under older keys. It walks the table in
// id order, batch rows at a time, calling progress after each batch with the
// rows done and the total. A row is written only if its secrets are still
// what was read, so an API rotating a secret at the same moment wins and the
// row is read again; running it twice changes nothing the second time.
func (s *Store) ReencryptSecrets(ctx context.Context, batch int, progress func(done, total int)) (ReencryptResult, error) {
	var res ReencryptResult
	if s.secrets.Len() == 0 {
		return res, secretbox.ErrNoKeys
	}
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM receivers`).Scan(&total); err != nil {
		return res, fmt.Errorf("count receivers: %w", err)
	}
	last := uuid.Nil
	for {
		rows, err := s.pool.Query(ctx, `
			SELECT id, signing_secret, previous_signing_secret FROM receivers
			WHERE id > $1 ORDER BY id LIMIT $2`, last, batch)
		if err != nil {
			return res, fmt.Errorf("read secrets: %w", err)
		}
		stored, err := pgx.CollectRows(rows, pgx.RowToStructByPos[storedSecrets])
		if err != nil {
			return res, fmt.Errorf("read secrets: %w", err)
		}
		for _, row := range stored {
			resealed, err := s.reseal(ctx, row)
			if err != nil {
				return res, err
			}
			res.Receivers++
			if resealed {
				res.Resealed++
			}
			last = row.ID
		}
		if progress != nil {
			progress(res.Receivers, max(total, res.Receivers))
		}
		if len(stored) < batch {
			return res, nil
		}
	}
}

type storedSecrets struct {
	ID       uuid.UUID
	Current  string
	Previous *string
}

// reseal rewrites one row's secrets under the current key if needed, reading
// the row again when a concurrent write changed it first.
func (s *Store) reseal(ctx context.Context, row storedSecrets) (bool, error) {
	for {
		prev := ""
		if row.Previous != nil {
			prev = *row.Previous
		}
		if !s.secrets.NeedsReseal(row.Current) && (prev == "" || !s.secrets.NeedsReseal(prev)) {
			return false, nil
		}
		r := Receiver{ID: row.ID, SigningSecret: row.Current, PreviousSecret: prev}
		if err := s.openSecrets(&r); err != nil {
			return false, err
		}
		cur, err := s.sealSecret(row.ID, r.SigningSecret)
		if err != nil {
			return false, err
		}
		var newPrev *string
		if row.Previous != nil {
			p, err := s.sealSecret(row.ID, r.PreviousSecret)
			if err != nil {
				return false, err
			}
			newPrev = &p
		}
		tag, err := s.pool.Exec(ctx, `
			UPDATE receivers SET signing_secret = $2, previous_signing_secret = $3
			WHERE id = $1 AND signing_secret = $4 AND previous_signing_secret IS NOT DISTINCT FROM $5`,
			row.ID, cur, newPrev, row.Current, row.Previous)
		if err != nil {
			return false, fmt.Errorf("reseal receiver %s: %w", row.ID, err)
		}
		if tag.RowsAffected() == 1 {
			return true, nil
		}
		// Changed (or deleted) since it was read: read it again.
		err = s.pool.QueryRow(ctx, `SELECT id, signing_secret, previous_signing_secret FROM receivers WHERE id = $1`, row.ID).
			Scan(&row.ID, &row.Current, &row.Previous)
		if err != nil {
			if notFound(err) == ErrNotFound {
				return false, nil
			}
			return false, fmt.Errorf("reseal receiver %s: %w", row.ID, err)
		}
	}
}
