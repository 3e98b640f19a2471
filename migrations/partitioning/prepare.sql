-- Migration 00010, step 1 (idempotent; runs while the old tables take writes).
--
-- notification_keys holds one row per notification id (derived from
-- receiver + idempotency key) with its created_at: the one index that spans
-- every partition. A primary key on a partitioned table must contain the
-- partition key, so (id, created_at) could not stop the same business key
-- from being inserted again on another day; this table's primary key does,
-- and it maps an id to its partition for look-ups by id alone.
CREATE TABLE IF NOT EXISTS notification_keys (
    id         uuid PRIMARY KEY,
    created_at timestamptz NOT NULL
);

-- Where the old table ends and the daily partitions begin: the start of the
-- UTC day after tomorrow, chosen once (a resumed run reads it back).
CREATE TABLE IF NOT EXISTS partition_migration (cut timestamptz NOT NULL);
INSERT INTO partition_migration
SELECT (date_trunc('day', now() AT TIME ZONE 'UTC') + interval '2 days') AT TIME ZONE 'UTC'
WHERE NOT EXISTS (SELECT FROM partition_migration);

-- The attempts' partition key: their notification's created_at. Nullable
-- while it is filled in (adding a nullable column rewrites nothing).
ALTER TABLE delivery_attempts ADD COLUMN IF NOT EXISTS notification_created_at timestamptz;

-- While the move runs, the previous version keeps writing: these triggers
-- keep the new column and the key table up to date with its writes.
CREATE OR REPLACE FUNCTION notifyd_legacy_attempt_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.notification_created_at IS NULL THEN
        SELECT created_at INTO NEW.notification_created_at FROM notifications WHERE id = NEW.notification_id;
    END IF;
    RETURN NEW;
END $$;
CREATE OR REPLACE FUNCTION notifyd_legacy_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM notification_keys WHERE id = OLD.id;
        RETURN OLD;
    END IF;
    INSERT INTO notification_keys (id, created_at) VALUES (NEW.id, NEW.created_at) ON CONFLICT DO NOTHING;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS notifyd_legacy_attempt_key ON delivery_attempts;
CREATE TRIGGER notifyd_legacy_attempt_key BEFORE INSERT ON delivery_attempts
    FOR EACH ROW EXECUTE FUNCTION notifyd_legacy_attempt_key();
DROP TRIGGER IF EXISTS notifyd_legacy_key ON notifications;
CREATE TRIGGER notifyd_legacy_key AFTER INSERT OR DELETE ON notifications
    FOR EACH ROW EXECUTE FUNCTION notifyd_legacy_key();
