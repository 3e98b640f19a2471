-- +goose Up
-- Receiver API keys move to a table of their own so a receiver can hold
-- several at once (a rotation: create the new key, deploy it, revoke the old
-- one) and each can be revoked alone. Keys stay stored as SHA-256 hashes;
-- prefix is the first characters of the key, shown so people can tell keys
-- apart without the secret.
CREATE TABLE receiver_api_keys (
    id           uuid PRIMARY KEY,
    receiver_id  uuid NOT NULL REFERENCES receivers (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    key_hash     bytea NOT NULL UNIQUE,
    prefix       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
);
CREATE INDEX receiver_api_keys_receiver ON receiver_api_keys (receiver_id, created_at);

-- Every existing key keeps working: it becomes the receiver's key "default",
-- with the receiver's id as its id (one key per receiver so far, so the ids
-- are unique). Its prefix is unknown: only the hash was kept.
INSERT INTO receiver_api_keys (id, receiver_id, name, key_hash, prefix, created_at)
SELECT id, id, 'default', api_key_hash, 'nfy_', created_at FROM receivers;

ALTER TABLE receivers DROP COLUMN api_key_hash;

-- Producer tokens as records, each scoped to the receivers it may send to
-- and cancel for: every receiver (all_receivers) or the listed ones.
CREATE TABLE producers (
    id            uuid PRIMARY KEY,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    token_hash    bytea NOT NULL UNIQUE,
    prefix        text NOT NULL,
    all_receivers boolean NOT NULL,
    receivers     uuid[] NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    CHECK (all_receivers OR cardinality(receivers) > 0)
);

-- +goose Down
DROP TABLE producers;
ALTER TABLE receivers ADD COLUMN api_key_hash bytea UNIQUE;
-- Only one key per receiver fits back: the oldest.
UPDATE receivers r SET api_key_hash = (
    SELECT key_hash FROM receiver_api_keys k WHERE k.receiver_id = r.id ORDER BY created_at, id LIMIT 1);
DROP TABLE receiver_api_keys;
