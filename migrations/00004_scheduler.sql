-- +goose Up
-- No new index on notifications. The scheduler's queries need:
--   - re-drive: pending notifications due before a cut-off, by next_attempt_at:
--     notifications_pending_due (00001), a partial index of pending rows only;
--   - retention: terminal notifications created before the cut-off
--     (DELETE … WHERE id IN (SELECT id … WHERE created_at < $1 AND status <>
--     'pending' LIMIT n)), and the daily summary: one day of notifications
--     across receivers (created_at in [day, day+1)): both a range on
--     created_at, served by notifications_created (created_at, id) from 00002
--     (the admin listing's index). Without it each retention batch would scan
--     the whole table: deleted space is reused by new rows, so the heap is not
--     in created_at order and a scan cannot stop early.
--   - the live summary of one receiver: notifications_receiver_created (00001).
-- A separate partial index on terminal rows for retention would cost one more
-- btree insertion per notification (at its status change) for no gain over
-- the existing one. internal/scheduler's TestJobQueriesAreIndexBacked checks
-- each query against its index, so dropping one of them fails a test.

-- One row per receiver and UTC day: what happened to the notifications created
-- that day, as counted by the daily summary job (upserted, so a re-run replaces
-- the snapshot). failure_rate = failed / (delivered + failed), NULL when
-- nothing reached delivered or failed yet. Attempt latency covers the
-- automatic and manual attempts of those notifications. Rows are small (one per
-- active receiver per day) and are kept after the notifications they count
-- are deleted by retention, so the health history outlives it.
CREATE TABLE receiver_daily_summaries (
    receiver_id    uuid NOT NULL REFERENCES receivers (id) ON DELETE CASCADE,
    day            date NOT NULL,
    delivered      integer NOT NULL,
    failed         integer NOT NULL,
    pending        integer NOT NULL,
    cancelled      integer NOT NULL,
    failure_rate   double precision,
    attempts       integer NOT NULL,
    avg_attempt_ms double precision,
    p95_attempt_ms double precision,
    computed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (receiver_id, day)
);

-- GET /v1/receivers/summary?day=… lists every receiver's row for one day; the
-- primary key serves one receiver's days.
CREATE INDEX receiver_daily_summaries_day ON receiver_daily_summaries (day);

-- +goose Down
DROP TABLE receiver_daily_summaries;
