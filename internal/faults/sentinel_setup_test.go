package faults

import (
	"errors"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/fleet"
)

// sentinelSet is a fleet.Sentinel (master, replica, three sentinels, no
// persistence) stopped when the test ends.
type sentinelSet struct {
	*fleet.Sentinel
	t *testing.T
}

func startSentinelSet(t *testing.T) *sentinelSet {
	t.Helper()
	s, err := fleet.StartSentinel(t.TempDir(), false)
	if s != nil {
		t.Cleanup(func() {
			if t.Failed() {
				for _, n := range s.Nodes {
					if n != nil && n.Proc != nil {
						t.Log(n.Proc.LogDigest())
					}
				}
			}
			s.Stop()
		})
	}
	if errors.Is(err, fleet.ErrNoRedisServer) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &sentinelSet{Sentinel: s, t: t}
}

// url is NOTIFYD_REDIS_URL for the set.
func (s *sentinelSet) url() string { return s.URL() }

// killMaster SIGKILLs the master, waits for the promotion and brings the
// old master back, empty, as a replica; it returns the time to promotion.
func (s *sentinelSet) killMaster() time.Duration {
	s.t.Helper()
	took, err := s.KillMaster()
	if err != nil {
		s.t.Fatal(err)
	}
	return took
}
