package worker

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestBusyDelayFollowsAnswerTime(t *testing.T) {
	t.Parallel()
	var l latencies
	fast, slow, hanging, unseen := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	l.observe(fast, 10*time.Millisecond)
	l.observe(slow, 4*time.Second)
	l.observe(hanging, 40*time.Second)
	tests := []struct {
		name     string
		receiver uuid.UUID
		min, max time.Duration
	}{
		{"not seen yet", unseen, 200 * time.Millisecond, time.Second},
		{"fast", fast, 200 * time.Millisecond, time.Second},
		{"slow: about its answer time", slow, 2 * time.Second, 4 * time.Second},
		{"capped", hanging, 15 * time.Second, 15 * time.Second},
	}
	for _, tc := range tests {
		for range 50 {
			if d := l.busyDelay(tc.receiver); d < tc.min || d > tc.max {
				t.Fatalf("%s: %s outside [%s, %s]", tc.name, d, tc.min, tc.max)
			}
		}
	}
}
