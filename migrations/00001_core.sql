-- +goose Up
-- Receivers are the merchants we call back. The API key is shown once and kept
-- only as a SHA-256 hash; the signing secret must stay readable because we sign
-- every delivery with it.
CREATE TABLE receivers (
    id                       uuid PRIMARY KEY,
    name                     text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    callback_url             text NOT NULL,
    api_key_hash             bytea NOT NULL UNIQUE,
    signing_secret           text NOT NULL,
    previous_signing_secret  text,
    previous_secret_until    timestamptz,
    retry_policy             jsonb,
    success_body             text,
    timeout_ms               integer CHECK (timeout_ms IS NULL OR timeout_ms BETWEEN 100 AND 30000),
    active                   boolean NOT NULL DEFAULT true,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now()
);

-- Enums keep the rows narrow (4 bytes) while staying readable in psql.
CREATE TYPE notification_status AS ENUM ('pending', 'delivered', 'failed', 'cancelled');
CREATE TYPE attempt_outcome AS ENUM ('success', 'failure', 'gone', 'timeout', 'blocked');

-- One row per notification. The id is derived from (receiver_id,
-- idempotency_key) (a UUIDv5, internal/tasks.NotificationID), so the primary
-- key is what makes a business key unique per receiver, and look-ups by key
-- go through it: a second unique index on (receiver_id, idempotency_key)
-- would only add a large entry to every insert and status change.
CREATE TABLE notifications (
    id               uuid PRIMARY KEY,
    receiver_id      uuid NOT NULL REFERENCES receivers (id),
    event_type       text NOT NULL,
    idempotency_key  text NOT NULL,
    callback_url     text,            -- NULL: the receiver's default
    payload          bytea NOT NULL,  -- the producer's JSON, byte for byte
    status           notification_status NOT NULL DEFAULT 'pending',
    attempts         smallint NOT NULL DEFAULT 0,   -- automatic attempts made, as recorded below
    max_attempts     smallint NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    next_attempt_at  timestamptz,                   -- set only while pending
    last_attempt_at  timestamptz,
    delivered_at     timestamptz,
    last_status_code smallint,
    last_error       text
);

-- Receivers list their history by creation time (keyset pagination on created_at, id).
CREATE INDEX notifications_receiver_created ON notifications (receiver_id, created_at, id);
-- The re-drive job looks for pending notifications that are due.
CREATE INDEX notifications_pending_due ON notifications (next_attempt_at) WHERE status = 'pending';

-- Every HTTP attempt. (notification_id, attempt_no) as the key makes recording
-- idempotent: a write that is retried after a lost acknowledgement is ignored.
-- Manual redeliveries use negative attempt numbers so they never collide with
-- the automatic schedule. started_at is kept so the table can later be
-- partitioned by time (the key would then gain started_at).
CREATE TABLE delivery_attempts (
    notification_id uuid NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    attempt_no      smallint NOT NULL,
    started_at      timestamptz NOT NULL,
    duration_ms     integer NOT NULL,
    status_code     smallint,
    outcome         attempt_outcome NOT NULL,
    error           text,
    response_body   text,
    PRIMARY KEY (notification_id, attempt_no)
);

-- +goose Down
DROP TABLE delivery_attempts;
DROP TABLE notifications;
DROP TYPE attempt_outcome;
DROP TYPE notification_status;
DROP TABLE receivers;
