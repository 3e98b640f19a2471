// Package metricset lists the Prometheus metrics a package declares. A Set
// registers each collector with another Registerer (Prometheus's default
// one) and remembers it, so the package can describe everything it
// exports without a hand-kept list that drifts: the dashboard and alert
// checks in deploy/ compare their queries against these descriptions.
//
// It owns that bookkeeping only: it must not declare metrics itself.
package metricset

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Set is a prometheus.Registerer that remembers what it registered.
type Set struct {
	to         prometheus.Registerer
	mu         sync.Mutex
	collectors []prometheus.Collector
}

// New returns a Set that registers with to.
func New(to prometheus.Registerer) *Set { return &Set{to: to} }

// Register implements prometheus.Registerer.
func (s *Set) Register(c prometheus.Collector) error {
	if err := s.to.Register(c); err != nil {
		return err
	}
	s.mu.Lock()
	s.collectors = append(s.collectors, c)
	s.mu.Unlock()
	return nil
}

// MustRegister implements prometheus.Registerer.
func (s *Set) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := s.Register(c); err != nil {
			panic(err)
		}
	}
}

// Unregister implements prometheus.Registerer.
func (s *Set) Unregister(c prometheus.Collector) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, have := range s.collectors {
		if have == c {
			s.collectors = append(s.collectors[:i], s.collectors[i+1:]...)
			break
		}
	}
	return s.to.Unregister(c)
}

// Describe sends the description of every metric registered through s.
func (s *Set) Describe(ch chan<- *prometheus.Desc) {
	s.mu.Lock()
	cs := append([]prometheus.Collector(nil), s.collectors...)
	s.mu.Unlock()
	for _, c := range cs {
		c.Describe(ch)
	}
}
