package faults

import (
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/fleet"
)

// seed makes every "random" receiver answer reproducible: the answer to a
// request depends only on (seed, notification id, attempt number), never on
// arrival order, so a resent attempt gets the same answer as the original.
const seed = 0x5eed2026

// roll is a deterministic pseudo-random number for (salt, id, attempt).
func roll(salt, id string, attempt int) uint32 { return fleet.Roll(seed, salt, id, attempt) }

// receivers is fleet.Receivers closed when the test ends.
type receivers = fleet.Receivers

func newReceivers(t *testing.T, n int, behave func(idx int, id string, attempt int) (time.Duration, int)) *receivers {
	t.Helper()
	rs, err := fleet.NewReceivers(n, behave)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.Close)
	return rs
}
