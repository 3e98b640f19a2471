package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/notifyd/notifyd/internal/metricset"
)

// declared registers every metric of this package with Prometheus's default
// registry and remembers it, for Describe.
var declared = metricset.New(prometheus.DefaultRegisterer)

// factory is promauto on declared; every metric here is made through it.
var factory = promauto.With(declared)

// Describe sends the description of every metric the notifyd service
// exports: those declared here and those of the collectors a process builds
// when it starts (queue depth, connection pools).
func Describe(ch chan<- *prometheus.Desc) {
	declared.Describe(ch)
	for _, d := range scrapedDescs() {
		ch <- d
	}
}

// scrapedDescs are the descriptions of every scrape-time collector's
// metrics, for Describe.
func scrapedDescs() []*prometheus.Desc {
	ch := make(chan *prometheus.Desc, 32)
	(&QueueCollector{}).Describe(ch)
	(&DBPoolCollector{}).Describe(ch)
	(&RedisPoolCollector{}).Describe(ch)
	(&CircuitCollector{}).Describe(ch)
	close(ch)
	var out []*prometheus.Desc
	for d := range ch {
		out = append(out, d)
	}
	return out
}
