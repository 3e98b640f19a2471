package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of the receiver health lifecycle (the scheduler's lifecycle job,
// internal/scheduler/lifecycle.go).
var (
	// ReceiverTransitions counts health state changes by operational event
	// (receiver.failing, receiver.disabled, receiver.recovered,
	// receiver.enabled), in the process that made them.
	ReceiverTransitions = factory.NewCounterVec(prometheus.CounterOpts{
		Namespace: "notifyd", Name: "receiver_transitions_total",
		Help: "Receiver health state changes, by event (receiver.failing, receiver.disabled, receiver.recovered, receiver.enabled).",
	}, []string{"event"})

	// DisabledFailed counts notifications ended failed (receiver_disabled)
	// because their receiver is disabled, by where: "job" (pending when it
	// was disabled), "ingest" (sent to it over HTTP while disabled),
	// "worker" (a task of it taken while disabled: Go client, outbox).
	DisabledFailed = factory.NewCounterVec(prometheus.CounterOpts{
		Namespace: "notifyd", Name: "receiver_disabled_notifications_total",
		Help: "Notifications failed with receiver_disabled, by where (job, ingest, worker).",
	}, []string{"where"})
)
