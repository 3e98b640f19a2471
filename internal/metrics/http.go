package metrics

import "github.com/prometheus/client_golang/prometheus"

// Metrics of the HTTP API (query/metrics.go records them). Routes are
// Echo's templates ("/v1/notifications/:id"), never the requested path, so
// the series stay bounded; a request no route matched counts as "unmatched".
var (
	// HTTPRequests counts answered requests by route, method and status
	// class (2xx, 3xx, 4xx, 5xx).
	HTTPRequests = factory.NewCounterVec(prometheus.CounterOpts{
		Namespace: "notifyd", Name: "http_requests_total",
		Help: "HTTP API requests answered, by route template, method and status class (code: 2xx, 4xx, 5xx...).",
	}, []string{"route", "method", "code"})

	// HTTPDuration is the time from the request reaching the API to the
	// answer being written.
	HTTPDuration = factory.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "notifyd", Name: "http_request_duration_seconds",
		Help:    "HTTP API request latency, by route template and method.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"route", "method"})
)
