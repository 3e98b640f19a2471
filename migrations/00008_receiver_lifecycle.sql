-- +goose Up
-- Receiver health lifecycle (internal/scheduler's lifecycle job).
--
-- status is the receiver's health as the scheduler last judged it:
--   active    attempts succeed (or none failed long enough to matter);
--   failing   every attempt has failed for NOTIFYD_FAILING_AFTER; still attempted;
--   disabled  every attempt failed for NOTIFYD_AUTO_DISABLE_AFTER: nothing is
--             attempted, new notifications are recorded failed at once,
--             until the receiver is enabled again.
-- It is separate from `active`, the admin's switch (false: new notifications
-- refused, pending ones still delivered), whose meaning does not change.
--
-- failing_since is the start of the current run of failed attempts: set by
-- the first failed attempt after a success (or after an enable), cleared by a
-- success. The worker's attempt recorder maintains it and last_success_at in
-- the same statement that records the attempts, writing a receiver row only
-- when one of them changes (last_success_at at most once a minute), so the
-- job never looks at notifications or attempts to judge a receiver.
ALTER TABLE receivers
    ADD COLUMN status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'failing', 'disabled')),
    ADD COLUMN status_changed_at timestamptz,
    ADD COLUMN disabled_reason text,
    ADD COLUMN disabled_at timestamptz,
    ADD COLUMN failing_since timestamptz,
    ADD COLUMN last_success_at timestamptz,
    -- The receiver's own operational events (receiver.failing, …) go here,
    -- signed with its own secret. NULL: none.
    ADD COLUMN status_callback_url text,
    -- The operator receiver: operational events of every receiver go to it
    -- (NOTIFYD_OPERATOR_CALLBACK_URL). At most one.
    ADD COLUMN operator boolean NOT NULL DEFAULT false;

CREATE UNIQUE INDEX receivers_operator ON receivers (operator) WHERE operator;
-- The lifecycle job's look-ups: the receivers with a run of failures, and
-- those not active. Both are the few, not the many.
CREATE INDEX receivers_failing_since ON receivers (failing_since) WHERE failing_since IS NOT NULL;
CREATE INDEX receivers_unhealthy ON receivers (status) WHERE status <> 'active';

-- +goose Down
DROP INDEX receivers_unhealthy;
DROP INDEX receivers_failing_since;
DROP INDEX receivers_operator;
ALTER TABLE receivers
    DROP COLUMN operator,
    DROP COLUMN status_callback_url,
    DROP COLUMN last_success_at,
    DROP COLUMN failing_since,
    DROP COLUMN disabled_at,
    DROP COLUMN disabled_reason,
    DROP COLUMN status_changed_at,
    DROP COLUMN status;
