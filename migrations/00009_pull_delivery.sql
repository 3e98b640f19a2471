-- +goose Up
-- Pull delivery (issue 16): a receiver without a public callback URL sets
-- delivery = 'pull'. Workers then make no HTTP attempt for it; each
-- scheduled attempt is an offer on the receiver's event stream
-- (GET /v1/notifications/stream), recorded as an attempt with outcome
-- 'offered', and the receiver's acknowledgement (POST …/ack) makes the
-- notification delivered. A constant default adds the column without
-- rewriting the table; pull receivers may leave callback_url empty.
ALTER TABLE receivers ADD COLUMN delivery text NOT NULL DEFAULT 'push'
    CHECK (delivery IN ('push', 'pull'));

-- An offer is an attempt on record, so the query API, the attempts count
-- and the schedule behave as for push receivers. (A value added to an enum
-- cannot be used in the transaction that adds it; nothing here uses it.)
ALTER TYPE attempt_outcome ADD VALUE IF NOT EXISTS 'offered';

-- +goose Down
-- Postgres cannot drop an enum value; 'offered' stays (unused) in
-- attempt_outcome. Pull receivers become push receivers with whatever
-- callback_url they hold.
ALTER TABLE receivers DROP COLUMN delivery;
