package notifier

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/notifyd/notifyd/internal/metricset"
)

// Outbox relay metrics. The relay runs in producers' processes (or as
// `notifyd relay`), so these describe the producer's outbox table. They live
// here, not in internal/metrics, so that a producer importing notifier
// registers only these, not every metric of the notifyd service.
var (
	// relayMetrics registers them with Prometheus's default registry and
	// lists them for DescribeMetrics.
	relayMetrics = metricset.New(prometheus.DefaultRegisterer)
	relayFactory = promauto.With(relayMetrics)

	// outboxRelayed counts outbox rows handed to notifyd's queue and marked
	// sent. A row re-sent after a relay crash counts again; re-sends after
	// the confirmation grace count in outboxResent instead.
	outboxRelayed = relayFactory.NewCounter(prometheus.CounterOpts{
		Namespace: "notifyd", Name: "outbox_relayed_total",
		Help: "Outbox rows enqueued to notifyd and marked sent.",
	})

	// outboxFailed counts rows the relay could not send, by reason. Reasons
	// unknown_receiver, inactive_receiver, invalid, callback_host and
	// idempotency_conflict mark the row dead;
	// registry_unavailable and redis leave it to be retried.
	outboxFailed = relayFactory.NewCounterVec(prometheus.CounterOpts{
		Namespace: "notifyd", Name: "outbox_failed_total",
		Help: "Outbox rows the relay could not send, by reason (dead: unknown_receiver, inactive_receiver, invalid, callback_host, idempotency_conflict; retried: registry_unavailable, redis).",
	}, []string{"reason"})

	// outboxErrors counts relay rounds that failed on the producer's database.
	outboxErrors = relayFactory.NewCounter(prometheus.CounterOpts{
		Namespace: "notifyd", Name: "outbox_relay_errors_total",
		Help: "Relay rounds that failed on the outbox database; the round is retried.",
	})

	// outboxBacklog is the number of rows waiting to be sent.
	outboxBacklog = relayFactory.NewGauge(prometheus.GaugeOpts{
		Namespace: "notifyd", Name: "outbox_backlog",
		Help: "Outbox rows neither sent nor dead.",
	})

	// outboxOldest is the age of the oldest row waiting to be sent (0 when
	// none): the alert for a relay that is down or stuck.
	outboxOldest = relayFactory.NewGauge(prometheus.GaugeOpts{
		Namespace: "notifyd", Name: "outbox_oldest_unsent_seconds",
		Help: "Age of the oldest outbox row neither sent nor dead.",
	})

	// outboxConfirmed counts sent rows notifyd confirmed it has on record:
	// they are done.
	outboxConfirmed = relayFactory.NewCounter(prometheus.CounterOpts{
		Namespace: "notifyd", Name: "outbox_confirmed_total",
		Help: "Sent outbox rows whose notification notifyd has recorded in its database.",
	})

	// outboxResent counts sent rows notifyd did not have on record after the
	// grace, which the relay enqueued again: result "resent" when Redis had
	// lost the task (a restart without data: the alert), "still_queued" when
	// Redis refused the copy (the task is waiting behind a backlog).
	outboxResent = relayFactory.NewCounterVec(prometheus.CounterOpts{
		Namespace: "notifyd", Name: "outbox_resent_total",
		Help: "Sent outbox rows unconfirmed after the grace and enqueued again (resent: Redis had lost them; still_queued: Redis still held them).",
	}, []string{"result"})

	// outboxConfirmErrors counts confirmation rounds that failed (notifyd's
	// database or API, or the outbox database); they are retried.
	outboxConfirmErrors = relayFactory.NewCounter(prometheus.CounterOpts{
		Namespace: "notifyd", Name: "outbox_confirm_errors_total",
		Help: "Outbox confirmation rounds that failed; retried on the next poll.",
	})

	// outboxUnconfirmed is the number of rows sent but not yet confirmed.
	outboxUnconfirmed = relayFactory.NewGauge(prometheus.GaugeOpts{
		Namespace: "notifyd", Name: "outbox_unconfirmed",
		Help: "Outbox rows queued in notifyd's Redis whose notification notifyd has not confirmed yet.",
	})

	// outboxDead is the number of rows the relay gave up on.
	outboxDead = relayFactory.NewGauge(prometheus.GaugeOpts{
		Namespace: "notifyd", Name: "outbox_dead",
		Help: "Outbox rows marked dead (see last_error), awaiting an operator.",
	})
)

// DescribeMetrics sends the description of every metric this package
// exports (the outbox relay's), for a program that checks dashboards or
// alerts against them. They are registered with Prometheus's default
// registry.
func DescribeMetrics(ch chan<- *prometheus.Desc) { relayMetrics.Describe(ch) }
