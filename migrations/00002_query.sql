-- +goose Up
-- Manual redeliveries are numbered per notification (1, 2, …) and recorded as
-- attempts −1, −2, …. The API takes the next number with an atomic
-- UPDATE … RETURNING on this counter, so concurrent requests never share one.
-- A constant default adds the column without rewriting the table.
ALTER TABLE notifications ADD COLUMN manual_requests smallint NOT NULL DEFAULT 0;

-- Indexes for the query API. Every listing is ordered by (created_at, id) and
-- pages with a keyset on those columns, so each index ends in them and a page
-- is a range scan.
--
-- Every index on notifications is paid for on each status change: status and
-- next_attempt_at are indexed (notifications_pending_due), so those updates
-- are never HOT and every index gets a new entry. At millions of
-- notifications a day that write cost dominates, so filters that only narrow
-- a receiver's (created_at) range - event type, delivered, pending - are
-- served by notifications_receiver_created (00001) with a filter, and only
-- the rare, selective one gets its own index:
--
-- "Everything that failed yesterday" and the recover endpoint. Partial: only
-- failed rows are in it, so it costs nothing for the ones that succeed.
CREATE INDEX notifications_failed ON notifications (receiver_id, created_at, id) WHERE status = 'failed';
-- The admin listing across receivers, the retention job and the daily summary.
CREATE INDEX notifications_created ON notifications (created_at, id);

-- +goose Down
DROP INDEX notifications_created;
DROP INDEX notifications_failed;
ALTER TABLE notifications DROP COLUMN manual_requests;
