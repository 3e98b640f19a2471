// Package metrics defines notifyd's Prometheus metrics in one place, so an
// operator can read the full list here. Labels are kept low-cardinality: no
// receiver or notification ids (those belong in logs and the query API).
//
// It declares metrics, and the collectors that read a dependency's state
// when Prometheus scrapes (queue depth from Asynq, connection pools); it
// must not import notifyd's other packages, so every package can use it.
// What the values mean, and the alerts on them, are in README's "Operating
// it" and deploy/observability/.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

var (
	// Accepted counts notifications recorded, by source: "http" for the
	// ingest endpoint, "queue" for those that reach Postgres through the
	// queue (Go client, outbox relay) when a worker records them (with
	// their first attempt, or before deferring them during a long outage).
	Accepted = factory.NewCounterVec(prometheus.CounterOpts{
		Namespace: "notifyd", Name: "notifications_accepted_total",
		Help: "Notifications accepted for delivery, by source.",
	}, []string{"source"})

	// Attempts counts delivery attempts by outcome.
	Attempts = factory.NewCounterVec(prometheus.CounterOpts{
		Namespace: "notifyd", Name: "delivery_attempts_total",
		Help: "HTTP delivery attempts, by outcome (success, failure, gone, timeout, blocked).",
	}, []string{"outcome"})

	// AttemptDuration is the time a receiver took to answer.
	AttemptDuration = factory.NewHistogram(prometheus.HistogramOpts{
		Namespace: "notifyd", Name: "delivery_attempt_duration_seconds",
		Help:    "Duration of HTTP delivery attempts.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})

	// Terminal counts notifications reaching a terminal state.
	Terminal = factory.NewCounterVec(prometheus.CounterOpts{
		Namespace: "notifyd", Name: "notifications_terminal_total",
		Help: "Notifications that reached a terminal status (delivered, failed, cancelled).",
	}, []string{"status"})

	// FirstAttemptDelay is the time from a notification's creation to the
	// start of its first attempt: queueing latency as receivers feel it.
	FirstAttemptDelay = factory.NewHistogram(prometheus.HistogramOpts{
		Namespace: "notifyd", Name: "first_attempt_delay_seconds",
		Help:    "Time from acceptance to the first delivery attempt.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 60},
	})

	// RetryLateness is how far an attempt started after its planned time.
	RetryLateness = factory.NewHistogram(prometheus.HistogramOpts{
		Namespace: "notifyd", Name: "retry_lateness_seconds",
		Help:    "Actual minus planned start of retries.",
		Buckets: []float64{-1, -.1, 0, .05, .1, .25, .5, 1, 2, 5, 30},
	})

	// RecorderBatch is the number of attempts written per database round trip.
	RecorderBatch = factory.NewHistogram(prometheus.HistogramOpts{
		Namespace: "notifyd", Name: "recorder_batch_size",
		Help:    "Attempts written per database statement.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 10),
	})

	// BeginBatch is the number of deliveries started per database round trip.
	BeginBatch = factory.NewHistogram(prometheus.HistogramOpts{
		Namespace: "notifyd", Name: "begin_batch_size",
		Help:    "Deliveries started (notification recorded or looked up) per database statement.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 10),
	})

	// BatchMembers is the number of notifications per batch task a worker ran.
	BatchMembers = factory.NewHistogram(prometheus.HistogramOpts{
		Namespace: "notifyd", Name: "task_batch_size",
		Help:    "Notifications per batch task run by a worker (single tasks are not counted).",
		Buckets: prometheus.ExponentialBuckets(2, 2, 7),
	})

	// RecorderErrors counts failed batch writes (each is retried).
	RecorderErrors = factory.NewCounter(prometheus.CounterOpts{
		Namespace: "notifyd", Name: "recorder_write_errors_total",
		Help: "Failed attempt-batch writes; the batch is retried until it lands.",
	})

	// InfraErrors counts tasks handed back because our own Postgres or Redis failed.
	InfraErrors = factory.NewCounterVec(prometheus.CounterOpts{
		Namespace: "notifyd", Name: "infrastructure_errors_total",
		Help: "Tasks handed back to the queue because notifyd's own dependencies failed.",
	}, []string{"dependency"})

	// Dropped counts tasks that cannot be processed at all (malformed, unknown receiver).
	Dropped = factory.NewCounterVec(prometheus.CounterOpts{
		Namespace: "notifyd", Name: "tasks_dropped_total",
		Help: "Tasks that could not be processed at all, by reason.",
	}, []string{"reason"})

	// IdempotencyConflicts counts idempotency keys used again with another
	// event type or payload, by where notifyd noticed: "http" (the ingest
	// answered 409) or "worker" (a Go-client or outbox notification whose
	// key was already on record; its task is dropped, the stored
	// notification stands, and a warning names both payload hashes).
	IdempotencyConflicts = factory.NewCounterVec(prometheus.CounterOpts{
		Namespace: "notifyd", Name: "idempotency_conflicts_total",
		Help: "Idempotency keys used again with a different event type or payload, by where it was detected (http, worker).",
	}, []string{"detected_by"})
)
