-- notifyd outbox: the table a producer writes notifications into, inside its
-- own database transactions, with notifier.(*Client).EnqueueTx. A relay
-- (notifier.NewRelay, or `notifyd relay`) moves committed rows to notifyd.
--
-- Apply it with your own migration tool: copy this file, or print it with
-- `notifyd outbox-schema [-table name]`, or call notifier.MigrateOutbox at
-- start-up. Every statement is idempotent. With another table name, replace
-- every "notifyd_outbox" below (the index names follow the table name).
--
-- Row life: written by EnqueueTx (sent_at and dead_at NULL) → enqueued by the
-- relay and marked sent_at in the same relay transaction → deleted by the
-- relay once sent_at is older than its retention (default 7 days). A row the
-- relay cannot ever deliver (unknown or inactive receiver, invalid content)
-- gets dead_at and last_error and is kept for an operator; setting dead_at
-- back to NULL makes the relay try it again.

CREATE TABLE IF NOT EXISTS notifyd_outbox (
    id              bigserial   PRIMARY KEY, -- relay order
    notification_id uuid        NOT NULL,    -- notifyd's id, derived from (receiver_id, idempotency_key)
    receiver_id     uuid        NOT NULL,
    event_type      text        NOT NULL,
    idempotency_key text        NOT NULL,
    callback_url    text        NOT NULL DEFAULT '',
    payload         bytea       NOT NULL,    -- JSON, byte for byte as the producer gave it
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,             -- handed to notifyd's queue
    dead_at         timestamptz,             -- given up; see last_error
    attempts        integer     NOT NULL DEFAULT 0, -- relay tries recorded (one cut short by a crash is not)
    last_error      text
);

-- What the relay scans (unsent rows, dead ones included, in order): small
-- however large the table grows.
CREATE INDEX IF NOT EXISTS notifyd_outbox_unsent_idx ON notifyd_outbox (id)
    WHERE sent_at IS NULL;

-- Pruning of sent rows.
CREATE INDEX IF NOT EXISTS notifyd_outbox_sent_idx ON notifyd_outbox (sent_at)
    WHERE sent_at IS NOT NULL;
