package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of the cron jobs in `notifyd scheduler` (internal/scheduler).
var (
	// JobRuns counts job runs by job (redrive, retention, summary) and result:
	// ok, error, or skipped (another replica held the job's lock).
	JobRuns = factory.NewCounterVec(prometheus.CounterOpts{
		Namespace: "notifyd", Subsystem: "scheduler", Name: "job_runs_total",
		Help: "Cron job runs, by job and result (ok, error, skipped).",
	}, []string{"job", "result"})

	// JobDuration is how long job runs that did their work took.
	JobDuration = factory.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "notifyd", Subsystem: "scheduler", Name: "job_duration_seconds",
		Help:    "Duration of cron job runs that held the job's lock, by job.",
		Buckets: []float64{.01, .05, .1, .5, 1, 5, 10, 30, 60, 300, 900},
	}, []string{"job"})

	// JobLastSuccess is the Unix time of each job's last successful run, so
	// an alert can fire when a job stops running anywhere.
	JobLastSuccess = factory.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "notifyd", Subsystem: "scheduler", Name: "job_last_success_timestamp_seconds",
		Help: "Unix time of the last successful run of each cron job in this process.",
	}, []string{"job"})

	// Redriven counts what the re-drive job did with overdue pending
	// notifications: enqueued (their task was missing from Redis),
	// already_queued (it was there), finalized (no attempt left: marked failed).
	Redriven = factory.NewCounterVec(prometheus.CounterOpts{
		Namespace: "notifyd", Subsystem: "scheduler", Name: "redrive_notifications_total",
		Help: "Overdue pending notifications seen by the re-drive job, by what it did (enqueued, already_queued, finalized).",
	}, []string{"action"})

	// RetentionDeleted counts rows the retention job deleted, by table
	// (notifications, attempts, audit_events).
	RetentionDeleted = factory.NewCounterVec(prometheus.CounterOpts{
		Namespace: "notifyd", Subsystem: "scheduler", Name: "retention_deleted_rows_total",
		Help: "Rows deleted by the retention job, by kind (notifications, attempts).",
	}, []string{"kind"})
)

// Metrics of the partition maintenance done by the retention job
// (internal/partition).
var (
	// PartitionsCreated counts daily partitions created ahead, by table.
	PartitionsCreated = factory.NewCounterVec(prometheus.CounterOpts{
		Namespace: "notifyd", Subsystem: "partition", Name: "created_total",
		Help: "Daily partitions created ahead by the retention job, by table.",
	}, []string{"table"})

	// PartitionsDropped counts notifications partitions past retention
	// detached and dropped (with their attempts partition).
	PartitionsDropped = factory.NewCounter(prometheus.CounterOpts{
		Namespace: "notifyd", Subsystem: "partition", Name: "dropped_total",
		Help: "Daily notifications partitions (with their attempts) dropped past retention.",
	})

	// PartitionsHeld is how many partitions past retention the last run kept
	// because they still hold a pending notification.
	PartitionsHeld = factory.NewGauge(prometheus.GaugeOpts{
		Namespace: "notifyd", Subsystem: "partition", Name: "held",
		Help: "Partitions past retention kept because a notification in them is still pending.",
	})

	// PartitionDefaultRows is how many rows (counted up to 1000) the default
	// partitions hold: writes for a day without a partition. Should be 0.
	PartitionDefaultRows = factory.NewGauge(prometheus.GaugeOpts{
		Namespace: "notifyd", Subsystem: "partition", Name: "default_rows",
		Help: "Rows in the default partitions of notifications and delivery_attempts (up to 1000); should be 0.",
	})
)
