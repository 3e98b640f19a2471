package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var circuitsOpenDesc = prometheus.NewDesc("notifyd_circuits_open",
	"Receivers whose circuit is open fleet-wide (deliveries deferred, one probe at a time), read from Redis when scraped.",
	nil, nil)

// CircuitCollector reports the fleet's open circuits, which every worker
// shares through Redis: read when scraped, as no single process counts
// them all.
type CircuitCollector struct {
	count func(context.Context) (int64, error)
}

// NewCircuitCollector reports what count reads (circuit.CountOpen).
func NewCircuitCollector(count func(context.Context) (int64, error)) *CircuitCollector {
	return &CircuitCollector{count: count}
}

// Describe implements prometheus.Collector.
func (c *CircuitCollector) Describe(ch chan<- *prometheus.Desc) { ch <- circuitsOpenDesc }

// Collect implements prometheus.Collector. A failed read leaves the metric
// out of the scrape (its absence is what an alert can see).
func (c *CircuitCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, err := c.count(ctx)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(circuitsOpenDesc, prometheus.GaugeValue, float64(n))
}
