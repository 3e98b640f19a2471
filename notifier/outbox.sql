-- notifyd outbox: the table a producer writes notifications into, inside its
-- own database transactions, with notifier.(*Client).EnqueueTx. A relay
-- (notifier.NewRelay, or `notifyd relay`) moves committed rows to notifyd.
--
-- Apply it with your own migration tool: copy this file, or print it with
-- `notifyd outbox-schema [-table name]`, or call notifier.MigrateOutbox at
-- start-up. Every statement is idempotent, and applying the file again
-- upgrades a table created by an older version. With another table name,
-- replace every "notifyd_outbox" below (the index names follow the table name).
--
-- Row life: written by EnqueueTx (sent_at, confirmed_at and dead_at NULL) →
-- queued in notifyd's Redis by the relay, sent_at set → confirmed_at set once
-- notifyd has the notification in its own Postgres (the relay asks it after a
-- grace period, and queues the row again while notifyd does not have it: a
-- Redis that restarted empty lost it) → deleted by the relay once
-- confirmed_at is older than its retention (default 7 days). A row the relay
-- cannot ever deliver (unknown or inactive receiver, invalid content) gets
-- dead_at and last_error and is kept for an operator; setting dead_at back to
-- NULL makes the relay try it again.

CREATE TABLE IF NOT EXISTS notifyd_outbox (
    id              bigserial   PRIMARY KEY, -- relay order
    notification_id uuid        NOT NULL,    -- notifyd's id, derived from (receiver_id, idempotency_key)
    receiver_id     uuid        NOT NULL,
    event_type      text        NOT NULL,
    idempotency_key text        NOT NULL,
    callback_url    text        NOT NULL DEFAULT '',
    payload         bytea       NOT NULL,    -- JSON, byte for byte as the producer gave it
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,             -- last queued in notifyd's Redis
    confirmed_at    timestamptz,             -- notifyd has it in its Postgres: the row is done
    dead_at         timestamptz,             -- given up; see last_error
    attempts        integer     NOT NULL DEFAULT 0, -- relay tries recorded (one cut short by a crash is not)
    resends         integer     NOT NULL DEFAULT 0, -- queued again because notifyd did not have it after the grace
    last_error      text
);

-- Upgrade of a table created before confirmation existed. Its sent rows
-- count as confirmed: the relay then treated them as done, and notifyd's
-- retention may have deleted their notifications since, which must not make
-- them look lost. The equivalent by hand:
--   ALTER TABLE notifyd_outbox ADD COLUMN confirmed_at timestamptz,
--       ADD COLUMN resends integer NOT NULL DEFAULT 0;
--   UPDATE notifyd_outbox SET confirmed_at = sent_at WHERE sent_at IS NOT NULL;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_attribute
                   WHERE attrelid = 'notifyd_outbox'::regclass AND attname = 'confirmed_at' AND NOT attisdropped) THEN
        ALTER TABLE notifyd_outbox ADD COLUMN confirmed_at timestamptz,
            ADD COLUMN resends integer NOT NULL DEFAULT 0;
        UPDATE notifyd_outbox SET confirmed_at = sent_at WHERE sent_at IS NOT NULL;
    END IF;
END
$$;

-- What the relay sends (unsent rows, dead ones included, in order): small
-- however large the table grows.
CREATE INDEX IF NOT EXISTS notifyd_outbox_unsent_idx ON notifyd_outbox (id)
    WHERE sent_at IS NULL;

-- What the relay confirms (queued rows notifyd has not confirmed yet, oldest
-- hand-off first).
CREATE INDEX IF NOT EXISTS notifyd_outbox_unconfirmed_idx ON notifyd_outbox (sent_at)
    WHERE sent_at IS NOT NULL AND confirmed_at IS NULL;

-- Pruning of confirmed rows (it replaces the older pruning index on sent_at).
CREATE INDEX IF NOT EXISTS notifyd_outbox_confirmed_idx ON notifyd_outbox (confirmed_at)
    WHERE confirmed_at IS NOT NULL;
DROP INDEX IF EXISTS notifyd_outbox_sent_idx;
