package scheduler

import (
	"context"
	"strings"
	"time"

	"github.com/notifyd/notifyd/internal/metrics"
)

// RetentionResult is what one retention run deleted.
type RetentionResult struct {
	// Cutoff: notifications created before it are past retention.
	Cutoff time.Time
	// Notifications and Attempts: rows removed, dropped partitions counted
	// by the planner's estimate (a drop reads no rows).
	Notifications int64
	Attempts      int64
	// PartitionsCreated: daily partitions created ahead (both tables).
	PartitionsCreated []string
	// PartitionsDropped: notifications partitions dropped with their
	// attempts; PartitionsHeld: past retention but kept, as a notification
	// in them is still pending.
	PartitionsDropped []string
	PartitionsHeld    []string
	// DefaultRows: rows found in the default partitions (up to 1000).
	DefaultRows int64
	// AuditEvents: audit_events rows older than Cutoff deleted.
	AuditEvents int64
	// Batches is the number of DELETE statements run on notifications.
	Batches int
	// Skipped: another instance was running the job.
	Skipped  bool
	Duration time.Duration
}

// RunRetention keeps the daily partitions of notifications and attempts
// (internal/partition): it creates those missing up to partition.Ahead days
// ahead, then detaches and drops each partition whose whole day is more
// than the retention ago, with its attempts partition, unless a
// notification in it is still pending: pending notifications are never
// removed, however old, and their partition waits for them. Dropping a
// partition deletes no row (no dead tuples, little WAL); only the
// partition's notification_keys rows are deleted, in batches.
//
// The partition left by migration 00010 (the unpartitioned table, holding
// everything before the migration) is emptied of terminal notifications past
// retention as before the partitioning (batched DELETEs) until its range
// is past retention and it is dropped whole. Then the audit events older
// than the cut-off are deleted in batches of RetentionBatch separated by
// RetentionPause, until none is left or ctx ends.
func (s *Scheduler) RunRetention(ctx context.Context) (RetentionResult, error) {
	var res RetentionResult
	skipped, took, err := s.locked(ctx, JobRetention, lockRetention, func(ctx context.Context) ([]any, error) {
		err := s.retention(ctx, &res)
		if err == nil {
			err = s.auditRetention(ctx, &res)
		}
		return []any{"cutoff", res.Cutoff, "notifications_deleted", res.Notifications, "attempts_deleted", res.Attempts,
			"audit_events_deleted", res.AuditEvents, "batches", res.Batches,
			"partitions_created", res.PartitionsCreated, "partitions_dropped", res.PartitionsDropped,
			"partitions_held", res.PartitionsHeld, "default_partition_rows", res.DefaultRows}, err
	})
	res.Skipped, res.Duration = skipped, took
	return res, err
}

func (s *Scheduler) retention(ctx context.Context, res *RetentionResult) error {
	now, err := s.store.Now(ctx)
	if err != nil {
		return err
	}
	res.Cutoff = now.Add(-s.cfg.Retention)
	if err := s.partitionsAhead(ctx, res); err != nil {
		return err
	}
	if err := s.dropExpired(ctx, res); err != nil {
		return err
	}
	return s.legacyRetention(ctx, res)
}

// partitionsAhead creates the missing partitions and checks that nothing
// was written for want of one.
func (s *Scheduler) partitionsAhead(ctx context.Context, res *RetentionResult) error {
	created, err := s.store.EnsurePartitions(ctx)
	res.PartitionsCreated = created
	for _, name := range created {
		metrics.PartitionsCreated.WithLabelValues(name[:strings.LastIndex(name, "_p")]).Inc()
	}
	if err != nil {
		return err
	}
	res.DefaultRows, err = s.store.DefaultPartitionRows(ctx, 1000)
	if err != nil {
		return err
	}
	metrics.PartitionDefaultRows.Set(float64(res.DefaultRows))
	if res.DefaultRows > 0 {
		s.logger.Error("partition: rows in the default partition: a day had no partition; move them into one",
			"rows", res.DefaultRows)
	}
	return nil
}

// dropExpired drops the partitions past retention that hold nothing
// pending.
func (s *Scheduler) dropExpired(ctx context.Context, res *RetentionResult) error {
	expired, err := s.store.ExpiredPartitions(ctx, res.Cutoff)
	if err != nil {
		return err
	}
	for _, p := range expired {
		pending, err := s.store.PartitionHasPending(ctx, p)
		if err != nil {
			return err
		}
		if pending {
			res.PartitionsHeld = append(res.PartitionsHeld, p.Name)
			s.logger.Warn("partition past retention kept: a notification in it is still pending", "partition", p.Name)
			continue
		}
		d, err := s.store.DropPartition(ctx, p, s.cfg.RetentionBatch, partitionLockTimeout)
		if err != nil {
			return err
		}
		res.PartitionsDropped = append(res.PartitionsDropped, p.Name)
		res.Notifications += d.Notifications
		res.Attempts += d.Attempts
		metrics.PartitionsDropped.Inc()
		metrics.RetentionDeleted.WithLabelValues("notifications").Add(float64(d.Notifications))
		metrics.RetentionDeleted.WithLabelValues("attempts").Add(float64(d.Attempts))
		s.logger.Info("partition dropped", "partition", p.Name, "until", p.Until,
			"notifications", d.Notifications, "attempts", d.Attempts, "keys", d.Keys)
	}
	metrics.PartitionsHeld.Set(float64(len(res.PartitionsHeld)))
	return nil
}

// partitionLockTimeout bounds the wait of a detach for the parent's lock:
// it queues behind running statements and every statement queues behind
// it, so it gives up quickly and the next run tries again.
const partitionLockTimeout = 2 * time.Second

// legacyRetention deletes past-retention terminal rows of the legacy
// partition in batches, as retention did before partitioning.
func (s *Scheduler) legacyRetention(ctx context.Context, res *RetentionResult) error {
	legacy, err := s.store.HasLegacyPartition(ctx)
	if err != nil || !legacy {
		return err
	}
	return s.inBatches(ctx, func() (int64, error) {
		n, a, err := s.store.DeleteExpired(ctx, res.Cutoff, s.cfg.RetentionBatch)
		if err != nil {
			return 0, err
		}
		res.Batches++
		res.Notifications += n
		res.Attempts += a
		metrics.RetentionDeleted.WithLabelValues("notifications").Add(float64(n))
		metrics.RetentionDeleted.WithLabelValues("attempts").Add(float64(a))
		return n, nil
	})
}

// auditRetention deletes audit events older than res.Cutoff in batches, like
// retention does notifications.
func (s *Scheduler) auditRetention(ctx context.Context, res *RetentionResult) error {
	return s.inBatches(ctx, func() (int64, error) {
		n, err := s.store.DeleteAuditEventsBefore(ctx, res.Cutoff, s.cfg.RetentionBatch)
		if err != nil {
			return 0, err
		}
		res.AuditEvents += n
		metrics.RetentionDeleted.WithLabelValues("audit_events").Add(float64(n))
		return n, nil
	})
}

// inBatches runs one deleting batch after another, a pause apart, until a
// batch deletes fewer rows than a full one: then nothing is left but rows
// locked by someone else, which the next run will get.
func (s *Scheduler) inBatches(ctx context.Context, batch func() (int64, error)) error {
	pause := time.NewTimer(0)
	defer pause.Stop()
	for {
		n, err := batch()
		if err != nil {
			return err
		}
		if n < int64(s.cfg.RetentionBatch) {
			return nil
		}
		pause.Reset(s.cfg.RetentionPause)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-pause.C:
		}
	}
}
