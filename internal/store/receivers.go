package store

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/notifyd/notifyd/internal/retry"
)

// Receiver is a merchant that gets notifications.
type Receiver struct {
	ID                  uuid.UUID
	Name                string
	CallbackURL         string
	SigningSecret       string
	PreviousSecret      string     // still signs until PreviousSecretUntil
	PreviousSecretUntil *time.Time // nil when there is no previous secret
	Retry               *retry.Policy
	SuccessBody         *string
	Timeout             time.Duration // 0: the service default
	// CallbackHosts restricts callback URL overrides (internal/callbackhosts):
	// nil means no restriction, empty means no override allowed.
	CallbackHosts []string
	Active        bool
	CreatedAt     time.Time
	UpdatedAt     time.Time
	// Delivery is DeliveryPush (HTTP callbacks) or DeliveryPull (offers on
	// the receiver's event stream, acknowledged by the receiver).
	Delivery string
	// StatusCallbackURL receives the receiver's own operational events
	// ("": none).
	StatusCallbackURL string
	Health
}

// Health is a receiver's place in the lifecycle (see lifecycle.go).
type Health struct {
	Status          string // ReceiverActive, ReceiverFailing or ReceiverDisabled
	StatusChangedAt *time.Time
	DisabledReason  string
	DisabledAt      *time.Time
	// FailingSince starts the current run of failed attempts (nil: the last
	// attempt succeeded, or none failed since the receiver was enabled).
	FailingSince  *time.Time
	LastSuccessAt *time.Time // at most a minute stale
	// Operator marks the receiver that gets every receiver's events.
	Operator bool
}

// Delivery modes of a receiver.
const (
	DeliveryPush = "push"
	DeliveryPull = "pull"
)

// Pull reports whether r receives by pulling (stream and acknowledgement)
// instead of callbacks.
func (r *Receiver) Pull() bool { return r.Delivery == DeliveryPull }

// HashAPIKey is how API keys are stored: a fast hash is right here because
// the keys are long random strings, not passwords.
func HashAPIKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

const receiverColumns = `id, name, callback_url, signing_secret, coalesce(previous_signing_secret, ''),
	previous_secret_until, retry_policy, success_body, coalesce(timeout_ms, 0), callback_hosts, active, created_at, updated_at,
	coalesce(status_callback_url, ''), status, status_changed_at, coalesce(disabled_reason, ''), disabled_at,
	failing_since, last_success_at, operator, delivery`

func (s *Store) scanReceiver(row pgx.Row) (*Receiver, error) {
	var r Receiver
	var policy []byte
	var timeoutMS int
	err := row.Scan(&r.ID, &r.Name, &r.CallbackURL, &r.SigningSecret, &r.PreviousSecret,
		&r.PreviousSecretUntil, &policy, &r.SuccessBody, &timeoutMS, &r.CallbackHosts, &r.Active, &r.CreatedAt, &r.UpdatedAt,
		&r.StatusCallbackURL, &r.Status, &r.StatusChangedAt, &r.DisabledReason, &r.DisabledAt,
		&r.FailingSince, &r.LastSuccessAt, &r.Operator, &r.Delivery)
	if err != nil {
		return nil, notFound(err)
	}
	if len(policy) > 0 {
		r.Retry = new(retry.Policy)
		if err := json.Unmarshal(policy, r.Retry); err != nil {
			return nil, fmt.Errorf("receiver %s: stored retry policy: %w", r.ID, err)
		}
	}
	r.Timeout = time.Duration(timeoutMS) * time.Millisecond
	if err := s.openSecrets(&r); err != nil {
		return nil, err
	}
	return &r, nil
}

func policyJSON(p *retry.Policy) ([]byte, error) {
	if p == nil {
		return nil, nil
	}
	return json.Marshal(p)
}

func timeoutMS(d time.Duration) *int {
	if d == 0 {
		return nil
	}
	ms := int(d / time.Millisecond)
	return &ms
}

// CreateReceiver inserts r (ID, Name, CallbackURL, SigningSecret, Retry,
// SuccessBody, Timeout, CallbackHosts) with its first API key, named
// "default", and fills in the times. See CreateReceiverWithKey.
func (s *Store) CreateReceiver(ctx context.Context, r *Receiver, apiKeyHash []byte) error {
	return s.CreateReceiverWithKey(ctx, r, &APIKey{ID: uuid.New(), Name: "default", Prefix: ""}, apiKeyHash)
}

// insertReceiver inserts r in q (a transaction that also adds its first key).
func (s *Store) insertReceiver(ctx context.Context, q pgx.Tx, r *Receiver) error {
	policy, err := policyJSON(r.Retry)
	if err != nil {
		return err
	}
	stored, err := s.sealSecret(r.ID, r.SigningSecret)
	if err != nil {
		return fmt.Errorf("create receiver: %w", err)
	}
	err = q.QueryRow(ctx, `
		INSERT INTO receivers (id, name, callback_url, signing_secret, retry_policy, success_body, timeout_ms, callback_hosts, active,
			status_callback_url, operator, status_changed_at, delivery)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, true, $9, $10, now(), coalesce(nullif($11, ''), 'push'))
		RETURNING created_at, updated_at, status_changed_at, delivery`,
		r.ID, r.Name, r.CallbackURL, stored, policy, r.SuccessBody, timeoutMS(r.Timeout), r.CallbackHosts,
		nullIfEmpty(r.StatusCallbackURL), r.Operator, r.Delivery,
	).Scan(&r.CreatedAt, &r.UpdatedAt, &r.StatusChangedAt, &r.Delivery)
	if err != nil {
		return fmt.Errorf("create receiver: %w", err)
	}
	r.Active, r.Status = true, ReceiverActive
	return nil
}

// GetReceiver returns ErrNotFound for an unknown id.
func (s *Store) GetReceiver(ctx context.Context, id uuid.UUID) (*Receiver, error) {
	r, err := s.scanReceiver(s.pool.QueryRow(ctx, `SELECT `+receiverColumns+` FROM receivers WHERE id = $1`, id))
	if err != nil {
		return nil, fmt.Errorf("get receiver %s: %w", id, err)
	}
	return r, nil
}

// ListReceiverStates returns every receiver id with its active flag, for the
// registry that producers consult in Redis.
func (s *Store) ListReceiverStates(ctx context.Context) (map[uuid.UUID]bool, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, active FROM receivers`)
	if err != nil {
		return nil, fmt.Errorf("list receivers: %w", err)
	}
	out := make(map[uuid.UUID]bool)
	var id uuid.UUID
	var active bool
	_, err = pgx.ForEachRow(rows, []any{&id, &active}, func() error { out[id] = active; return nil })
	if err != nil {
		return nil, fmt.Errorf("list receivers: %w", err)
	}
	return out, nil
}

// ReceiverCallbackHosts returns the callback_hosts of every receiver that
// restricts overrides, for the registry producers consult in Redis.
func (s *Store) ReceiverCallbackHosts(ctx context.Context) (map[uuid.UUID][]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, callback_hosts FROM receivers WHERE callback_hosts IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("list callback hosts: %w", err)
	}
	out := make(map[uuid.UUID][]string)
	var id uuid.UUID
	var hosts []string
	_, err = pgx.ForEachRow(rows, []any{&id, &hosts}, func() error {
		out[id] = append([]string{}, hosts...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list callback hosts: %w", err)
	}
	return out, nil
}

// ReceiverPatch holds the fields to change; nil leaves a field alone.
// ClearRetry, ClearSuccessBody and ClearTimeout reset to the service default;
// ClearCallbackHosts lifts the callback override restriction.
type ReceiverPatch struct {
	Name             *string
	CallbackURL      *string
	Retry            *retry.Policy
	ClearRetry       bool
	SuccessBody      *string
	ClearSuccessBody bool
	Timeout          *time.Duration
	Active           *bool
	// CallbackHosts, when not nil, replaces the list (empty: no override).
	CallbackHosts      *[]string
	ClearCallbackHosts bool
	// Delivery, when not nil, switches between push and pull.
	Delivery *string
	// StatusCallbackURL, when not nil, replaces the URL ("" removes it).
	StatusCallbackURL *string
}

// UpdateReceiver applies p and returns the receiver as stored.
func (s *Store) UpdateReceiver(ctx context.Context, id uuid.UUID, p ReceiverPatch) (*Receiver, error) {
	policy, err := policyJSON(p.Retry)
	if err != nil {
		return nil, err
	}
	var timeout *int
	if p.Timeout != nil {
		timeout = timeoutMS(*p.Timeout)
	}
	r, err := s.scanReceiver(s.pool.QueryRow(ctx, `
		UPDATE receivers SET
			name = coalesce($2, name),
			callback_url = coalesce($3, callback_url),
			retry_policy = CASE WHEN $4 THEN NULL ELSE coalesce($5, retry_policy) END,
			success_body = CASE WHEN $6 THEN NULL ELSE coalesce($7, success_body) END,
			timeout_ms = CASE WHEN $8 THEN $9 ELSE timeout_ms END,
			active = coalesce($10, active),
			callback_hosts = CASE WHEN $11 THEN NULL WHEN $12 THEN $13::text[] ELSE callback_hosts END,
			status_callback_url = CASE WHEN $14 THEN nullif($15, '') ELSE status_callback_url END,
			delivery = coalesce($16, delivery),
			updated_at = now()
		WHERE id = $1
		RETURNING `+receiverColumns,
		id, p.Name, p.CallbackURL, p.ClearRetry, policy, p.ClearSuccessBody, p.SuccessBody,
		p.Timeout != nil, timeout, p.Active, p.ClearCallbackHosts, p.CallbackHosts != nil, hostsArg(p.CallbackHosts),
		p.StatusCallbackURL != nil, derefOr(p.StatusCallbackURL, ""), p.Delivery))
	if err != nil {
		return nil, fmt.Errorf("update receiver %s: %w", id, err)
	}
	return r, nil
}

func derefOr(p *string, def string) string {
	if p == nil {
		return def
	}
	return *p
}

// hostsArg is a patch's new list as a query argument: non-nil even when
// empty, so that an empty list is stored as '{}' and not NULL.
func hostsArg(h *[]string) []string {
	if h == nil {
		return nil
	}
	return append([]string{}, *h...)
}

// RotateSecret makes secret the signing secret; the old one keeps signing
// (alongside) until now+grace so receivers can switch without a gap.
func (s *Store) RotateSecret(ctx context.Context, id uuid.UUID, secret string, grace time.Duration) (*Receiver, error) {
	stored, err := s.sealSecret(id, secret)
	if err != nil {
		return nil, fmt.Errorf("rotate secret %s: %w", id, err)
	}
	r, err := s.scanReceiver(s.pool.QueryRow(ctx, `
		UPDATE receivers SET
			previous_signing_secret = signing_secret,
			previous_secret_until = now() + make_interval(secs => $3),
			signing_secret = $2,
			updated_at = now()
		WHERE id = $1
		RETURNING `+receiverColumns, id, stored, grace.Seconds()))
	if err != nil {
		return nil, fmt.Errorf("rotate secret %s: %w", id, err)
	}
	return r, nil
}

// ListReceivers returns up to limit receivers in creation order (created_at,
// id), starting after the position after (nil: from the first), for the
// admin's receiver listing. Receivers are few (one per merchant), so the
// table is read without an index of its own.
func (s *Store) ListReceivers(ctx context.Context, after *Position, limit int) ([]*Receiver, error) {
	var at *time.Time
	var id uuid.UUID
	if after != nil {
		at, id = &after.CreatedAt, after.ID
	}
	rows, err := s.pool.Query(ctx, `SELECT `+receiverColumns+` FROM receivers
		WHERE $1::timestamptz IS NULL OR (created_at, id) > ($1, $2)
		ORDER BY created_at, id LIMIT $3`, at, id, limit)
	if err != nil {
		return nil, fmt.Errorf("list receivers: %w", err)
	}
	defer rows.Close()
	var out []*Receiver
	for rows.Next() {
		r, err := s.scanReceiver(rows)
		if err != nil {
			return nil, fmt.Errorf("list receivers: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list receivers: %w", err)
	}
	return out, nil
}
