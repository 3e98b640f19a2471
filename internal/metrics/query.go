package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

var (
	// ManualRedeliveries counts redeliveries queued through the query API.
	ManualRedeliveries = factory.NewCounter(prometheus.CounterOpts{
		Namespace: "notifyd", Name: "manual_redeliveries_total",
		Help: "Manual redeliveries queued through the query API.",
	})

	// Recovered counts failed notifications given another attempt by a
	// recover call.
	Recovered = factory.NewCounter(prometheus.CounterOpts{
		Namespace: "notifyd", Name: "notifications_recovered_total",
		Help: "Failed notifications re-opened for one more attempt by the recover API.",
	})
)
