-- +goose Up
-- Signing secrets at rest. With NOTIFYD_SECRET_KEYS set, signing_secret and
-- previous_signing_secret hold "nfysec1:<key id>:<base64url(nonce ||
-- AES-256-GCM ciphertext)>" sealed with the receiver id as associated data
-- (internal/secretbox); values without the prefix are legacy plaintext.
-- SQL cannot seal (the keys never reach the database), so existing plaintext
-- secrets are sealed by `notifyd migrate` right after this migration when the
-- keys are set, and by `notifyd rotate-secret-key` at any time.
COMMENT ON COLUMN receivers.signing_secret IS
    'nfysec1:<key id>:<sealed> (AES-256-GCM, AAD receiver id) or legacy plaintext; see internal/secretbox';
COMMENT ON COLUMN receivers.previous_signing_secret IS
    'as signing_secret';

-- One row per mutating API request (receivers, keys, producers, redeliver,
-- recover, cancel; not ingest): who, what, on which id, with what outcome.
-- Never a secret: principal_id is a receiver or producer id, not a token.
-- Deleted after NOTIFYD_RETENTION by the scheduler's retention job.
CREATE TABLE audit_events (
    id              uuid PRIMARY KEY,
    occurred_at     timestamptz NOT NULL DEFAULT now(),
    principal_kind  text NOT NULL,      -- admin, producer, receiver
    principal_id    text NOT NULL,      -- '' for the admin and static producer tokens
    method          text NOT NULL,
    route           text NOT NULL,      -- the route pattern, e.g. /v1/receivers/:id
    target_id       text,               -- the id acted on, when there is one
    status          smallint NOT NULL,  -- the HTTP status answered
    remote_ip       text NOT NULL
);
-- The admin listing (newest first, keyset on (occurred_at, id)) and retention.
CREATE INDEX audit_events_occurred ON audit_events (occurred_at, id);
-- "What happened to this receiver / notification".
CREATE INDEX audit_events_target ON audit_events (target_id, occurred_at, id) WHERE target_id IS NOT NULL;

-- +goose Down
DROP TABLE audit_events;
COMMENT ON COLUMN receivers.previous_signing_secret IS NULL;
COMMENT ON COLUMN receivers.signing_secret IS NULL;
