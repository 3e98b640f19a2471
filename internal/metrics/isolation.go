package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

var (
	// Deferred counts deliveries put back without an attempt, by reason
	// (circuit_open, receiver_busy, early).
	Deferred = factory.NewCounterVec(prometheus.CounterOpts{
		Namespace: "notifyd", Name: "deliveries_deferred_total",
		Help: "Deliveries put back in the queue without an attempt, by reason.",
	}, []string{"reason"})

	// BreakerTransitions counts circuit breaker state changes (open, closed).
	BreakerTransitions = factory.NewCounterVec(prometheus.CounterOpts{
		Namespace: "notifyd", Name: "circuit_transitions_total",
		Help: "Per-receiver circuit breaker transitions, by new state.",
	}, []string{"state"})
)
