-- +goose Up
-- Manual redeliveries are numbered per notification (1, 2, …) and recorded as
-- attempts −1, −2, …. The API takes the next number with an atomic
-- UPDATE … RETURNING on this counter, so concurrent requests never share one.
-- A constant default adds the column without rewriting the table.
ALTER TABLE notifications ADD COLUMN manual_requests smallint NOT NULL DEFAULT 0;

-- Indexes for the query API. Every listing is ordered by (created_at, id) and
-- pages with a keyset on those columns; each index below ends in them so a
-- filtered page is a range scan, never a scan of a receiver's history.
--
-- Status filters ("everything that failed yesterday") and the recover job.
-- status leads so that the same index also serves an admin listing by status
-- across receivers; receiver_id follows for the receivers' own listings.
CREATE INDEX notifications_status_receiver_created ON notifications (status, receiver_id, created_at, id);
-- Event type filters, per receiver or across receivers (admin).
CREATE INDEX notifications_event_receiver_created ON notifications (event_type, receiver_id, created_at, id);
-- The admin listing of every receiver's notifications.
CREATE INDEX notifications_created ON notifications (created_at, id);

-- +goose Down
DROP INDEX notifications_created;
DROP INDEX notifications_event_receiver_created;
DROP INDEX notifications_status_receiver_created;
ALTER TABLE notifications DROP COLUMN manual_requests;
