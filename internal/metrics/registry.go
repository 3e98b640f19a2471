package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// declared registers every metric of this package with Prometheus's default
// registry and remembers it, so Describe can name them all: the dashboard
// and alert checks compare their queries against that list, not against a
// hand-kept one.
var declared = &recorder{Registerer: prometheus.DefaultRegisterer}

// factory is promauto on declared; every metric here is made through it.
var factory = promauto.With(declared)

type recorder struct {
	prometheus.Registerer
	mu         sync.Mutex
	collectors []prometheus.Collector
}

func (r *recorder) Register(c prometheus.Collector) error {
	r.mu.Lock()
	r.collectors = append(r.collectors, c)
	r.mu.Unlock()
	return r.Registerer.Register(c)
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// Describe sends the description of every metric the notifyd service
// exports: those declared here and those of the collectors a process builds
// when it starts (queue depth, connection pools).
func Describe(ch chan<- *prometheus.Desc) {
	declared.mu.Lock()
	cs := append([]prometheus.Collector(nil), declared.collectors...)
	declared.mu.Unlock()
	for _, c := range cs {
		c.Describe(ch)
	}
	for _, d := range scrapedDescs() {
		ch <- d
	}
}
