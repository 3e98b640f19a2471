package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// AuditWriteFailures counts audit events the API could not store in
// audit_events (Postgres down or slow); each is logged at Error in full
// instead, so an alert on this counter says where to look.
var AuditWriteFailures = factory.NewCounter(prometheus.CounterOpts{
	Namespace: "notifyd", Subsystem: "api", Name: "audit_write_failures_total",
	Help: "Audit events that could not be written to Postgres (logged at Error instead).",
})
