-- +goose Up
-- callback_hosts restricts per-notification callback URL overrides to these
-- host names or *.domain patterns. NULL: no restriction (receivers created
-- before this column keep working); an empty array: no override allowed.
ALTER TABLE receivers ADD COLUMN callback_hosts text[];

-- +goose Down
ALTER TABLE receivers DROP COLUMN callback_hosts;
