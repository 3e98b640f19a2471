-- Migration 00010, step 3: one short transaction under an ACCESS EXCLUSIVE
-- lock of both tables, after the key table and the attempts' new column are
-- filled, the new unique indexes built CONCURRENTLY and the range checks
-- validated (steps 2a-2c). Nothing here scans or rewrites a table: the old
-- tables become the partitions of everything before the cut (:cut below)
-- as they are, their indexes reused.
LOCK TABLE notifications, delivery_attempts IN ACCESS EXCLUSIVE MODE;
DROP TRIGGER notifyd_legacy_attempt_key ON delivery_attempts;
DROP TRIGGER notifyd_legacy_key ON notifications;
DROP FUNCTION notifyd_legacy_attempt_key();
DROP FUNCTION notifyd_legacy_key();

-- A foreign key to a partitioned table would make every detach scan the
-- attempts; the write paths insert an attempt only with its notification.
ALTER TABLE delivery_attempts DROP CONSTRAINT delivery_attempts_notification_id_fkey;
ALTER TABLE notifications DROP CONSTRAINT notifications_pkey;
ALTER TABLE notifications ADD CONSTRAINT notifications_legacy_pkey PRIMARY KEY USING INDEX notifications_legacy_key;
ALTER TABLE delivery_attempts DROP CONSTRAINT delivery_attempts_pkey;
ALTER TABLE delivery_attempts ALTER COLUMN notification_created_at SET NOT NULL; -- implied by the valid check: no scan
ALTER TABLE delivery_attempts ADD CONSTRAINT delivery_attempts_legacy_pkey PRIMARY KEY USING INDEX delivery_attempts_legacy_key;

ALTER TABLE notifications RENAME TO notifications_legacy;
ALTER TABLE delivery_attempts RENAME TO delivery_attempts_legacy;
ALTER INDEX notifications_receiver_created RENAME TO notifications_legacy_receiver_created;
ALTER INDEX notifications_pending_due RENAME TO notifications_legacy_pending_due;
ALTER INDEX notifications_failed RENAME TO notifications_legacy_failed;
-- The old (created_at, id) index: the legacy partition's primary key is
-- now its unique twin.
DROP INDEX notifications_created;

-- Partitioned by the creation time, one partition per UTC day
-- (internal/partition). Same columns and indexes as before (00001, 00002,
-- 00009) but notifications_created, which the primary key replaces; the
-- key gains created_at, as it must, and uniqueness of the id is
-- notification_keys' job.
CREATE TABLE notifications (
    id               uuid NOT NULL,
    receiver_id      uuid NOT NULL REFERENCES receivers (id),
    event_type       text NOT NULL,
    idempotency_key  text NOT NULL,
    callback_url     text,
    payload          bytea NOT NULL,
    status           notification_status NOT NULL DEFAULT 'pending',
    attempts         smallint NOT NULL DEFAULT 0,
    max_attempts     smallint NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    next_attempt_at  timestamptz,
    last_attempt_at  timestamptz,
    delivered_at     timestamptz,
    last_status_code smallint,
    last_error       text,
    manual_requests  smallint NOT NULL DEFAULT 0,
    -- (created_at, id), not (id, created_at): a look-up by id carries its
    -- created_at (notification_keys), so both columns are equalities and
    -- either order finds it; in this order the key is also the admin
    -- listing's and the summaries' (created_at, id) index, which 00002 had
    -- to add as notifications_created: one index fewer on every insert.
    PRIMARY KEY (created_at, id)
) PARTITION BY RANGE (created_at);
CREATE INDEX notifications_receiver_created ON notifications (receiver_id, created_at, id);
CREATE INDEX notifications_pending_due ON notifications (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notifications_failed ON notifications (receiver_id, created_at, id) WHERE status = 'failed';

-- Attempts live in the partition of their notification's day, so both
-- leave together and a notification's attempts are one partition's index
-- range.
CREATE TABLE delivery_attempts (
    notification_id         uuid NOT NULL,
    attempt_no              smallint NOT NULL,
    started_at              timestamptz NOT NULL,
    duration_ms             integer NOT NULL,
    status_code             smallint,
    outcome                 attempt_outcome NOT NULL,
    error                   text,
    response_body           text,
    notification_created_at timestamptz NOT NULL,
    PRIMARY KEY (notification_id, attempt_no, notification_created_at)
) PARTITION BY RANGE (notification_created_at);

-- The same business key is accepted once for as long as its notification
-- is kept: the insert claims the id in notification_keys first, and a
-- claimed id skips the row (as ON CONFLICT DO NOTHING would), so every
-- insert path keeps its "existing one wins" behaviour. Deletes release it.
-- A claim with the key's own created_at is the same notification moving
-- partitions (an UPDATE of created_at re-keys it first, below).
CREATE FUNCTION notifyd_claim_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notification_keys (id, created_at) VALUES (NEW.id, NEW.created_at) ON CONFLICT DO NOTHING;
    IF FOUND THEN
        RETURN NEW;
    END IF;
    PERFORM FROM notification_keys WHERE id = NEW.id AND created_at = NEW.created_at;
    IF FOUND THEN
        RETURN NEW;
    END IF;
    RETURN NULL;
END $$;
CREATE FUNCTION notifyd_release_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM notification_keys WHERE id = OLD.id AND created_at = OLD.created_at;
    RETURN OLD;
END $$;
-- notifyd never changes a created_at; tests and repairs that do move the
-- notification, its key and its attempts together.
CREATE FUNCTION notifyd_rekey() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.created_at IS DISTINCT FROM OLD.created_at THEN
        UPDATE notification_keys SET created_at = NEW.created_at WHERE id = OLD.id;
        UPDATE delivery_attempts SET notification_created_at = NEW.created_at
        WHERE notification_id = OLD.id AND notification_created_at = OLD.created_at;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER notifyd_claim_key BEFORE INSERT ON notifications FOR EACH ROW EXECUTE FUNCTION notifyd_claim_key();
CREATE TRIGGER notifyd_release_key AFTER DELETE ON notifications FOR EACH ROW EXECUTE FUNCTION notifyd_release_key();
CREATE TRIGGER notifyd_rekey BEFORE UPDATE OF created_at ON notifications FOR EACH ROW EXECUTE FUNCTION notifyd_rekey();

-- The old tables are attached (or, empty, dropped) and the default and
-- daily partitions created by the migration's Go code (migrations/partition.go).
