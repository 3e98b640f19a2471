package main

import (
	"context"
	"errors"
	"fmt"
)

// StorageResult is scenario 7, measured right after the throughput run.
type StorageResult struct {
	Delivered          int64   `json:"delivered"`
	NotificationsTable int64   `json:"notifications_table_bytes"`
	NotificationsIndex int64   `json:"notifications_index_bytes"`
	AttemptsTable      int64   `json:"attempts_table_bytes"`
	AttemptsIndex      int64   `json:"attempts_index_bytes"`
	PayloadBytes       int64   `json:"payload_bytes"`
	BytesPerNotif      float64 `json:"bytes_per_notification_excl_payload"`
}

func (b *bench) storage(ctx context.Context) error {
	r := &StorageResult{}
	// A partitioned table's own size is 0: its partitions hold the rows.
	// The notifications' figures include their ids in notification_keys,
	// which partitioning added to keep a key unique across days.
	err := b.st.Pool().QueryRow(ctx, `
		WITH leaf AS (
			-- pg_partition_tree is empty for a table that is not partitioned.
			SELECT t.name, coalesce(p.relid, t.name::regclass) AS relid
			FROM unnest(ARRAY['notifications', 'notification_keys', 'delivery_attempts']) AS t(name)
				LEFT JOIN LATERAL pg_partition_tree(t.name::regclass) p ON true
			WHERE p.relid IS NULL OR p.isleaf
		)
		SELECT (SELECT count(*) FROM notifications WHERE status = 'delivered'),
			(SELECT coalesce(sum(pg_table_size(relid)), 0) FROM leaf WHERE name <> 'delivery_attempts')::int8,
			(SELECT coalesce(sum(pg_indexes_size(relid)), 0) FROM leaf WHERE name <> 'delivery_attempts')::int8,
			(SELECT coalesce(sum(pg_table_size(relid)), 0) FROM leaf WHERE name = 'delivery_attempts')::int8,
			(SELECT coalesce(sum(pg_indexes_size(relid)), 0) FROM leaf WHERE name = 'delivery_attempts')::int8,
			(SELECT coalesce(sum(octet_length(payload)), 0) FROM notifications)`).
		Scan(&r.Delivered, &r.NotificationsTable, &r.NotificationsIndex, &r.AttemptsTable, &r.AttemptsIndex, &r.PayloadBytes)
	if err != nil {
		return err
	}
	if r.Delivered == 0 {
		return errors.New("no delivered notifications to measure")
	}
	total := r.NotificationsTable + r.NotificationsIndex + r.AttemptsTable + r.AttemptsIndex - r.PayloadBytes
	r.BytesPerNotif = round(float64(total)/float64(r.Delivered), 1)
	b.res.Storage = r
	met, text := verdict(r.BytesPerNotif, targetStorageBytes, false)
	b.target("storage", met, text)
	per := func(v int64) float64 { return float64(v) / float64(r.Delivered) }
	b.rows = append(b.rows,
		row{"7 storage", fmt.Sprintf("%.0f B per delivered notification excl. payload (tables+indexes, no VACUUM)", r.BytesPerNotif), "≤ 1,024 B", text},
		row{"  breakdown", fmt.Sprintf("notifications %.0f + indexes %.0f, attempts %.0f + index %.0f, minus payload %.0f B",
			per(r.NotificationsTable), per(r.NotificationsIndex), per(r.AttemptsTable), per(r.AttemptsIndex), per(r.PayloadBytes)), "", ""},
	)
	return nil
}
