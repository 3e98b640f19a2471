package metricset

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

func names(s *Set) map[string]bool {
	ch := make(chan *prometheus.Desc, 16)
	s.Describe(ch)
	close(ch)
	out := map[string]bool{}
	for d := range ch {
		out[d.String()] = true
	}
	return out
}

// TestSetRemembersWhatItRegisters: what promauto registers through a Set is
// registered with the target registry and described by the Set; a refused
// registration and an unregistered collector are not described.
func TestSetRemembersWhatItRegisters(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := New(reg)
	f := promauto.With(s)
	c := f.NewCounter(prometheus.CounterOpts{Name: "a_total", Help: "a"})
	f.NewGaugeVec(prometheus.GaugeOpts{Name: "b", Help: "b"}, []string{"x"})
	if err := s.Register(prometheus.NewCounter(prometheus.CounterOpts{Name: "a_total", Help: "a"})); err == nil {
		t.Fatal("a duplicate registration was accepted")
	}
	if got := len(names(s)); got != 2 {
		t.Fatalf("described %d metrics, want 2", got)
	}
	c.Inc()
	families, err := reg.Gather()
	if err != nil || len(families) != 1 || families[0].GetName() != "a_total" {
		t.Fatalf("target registry gathered %v, %v; want a_total (b has no series yet)", families, err)
	}
	if !s.Unregister(c) {
		t.Fatal("unregister failed")
	}
	if got := len(names(s)); got != 1 {
		t.Fatalf("described %d metrics after unregistering one, want 1", got)
	}
}
