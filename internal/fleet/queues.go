package fleet

import (
	"fmt"
	"slices"
	"time"

	"github.com/hibiken/asynq"

	"github.com/notifyd/notifyd/internal/redisurl"
	"github.com/notifyd/notifyd/internal/tasks"
)

// WaitQueuesIdle waits until notifyd's Asynq queues at redisURL have held no
// waiting task (pending, scheduled, retry) for 2 s: every notification still
// in Redis has been taken by a worker. It returns the last queue figures.
// Active entries are not waited for: after a failover the new master may
// hold active-list entries of tasks whose completion the old master had not
// yet replicated, which Asynq recovers only after their lease (30 s) and
// whose notifications are terminal in Postgres already.
func WaitQueuesIdle(redisURL string, timeout time.Duration) (string, error) {
	rc, err := redisurl.Parse(redisURL)
	if err != nil {
		return "", fmt.Errorf("queues: %w", err)
	}
	insp := asynq.NewInspector(rc.AsynqOpt())
	defer insp.Close()
	var last string
	var idleSince time.Time
	deadline := time.Now().Add(timeout)
	for {
		busy := false
		last = ""
		// A queue Redis does not know (never used, or Redis restarted
		// empty) is empty; GetQueueInfo would call it an error.
		known, err := insp.Queues()
		if err != nil {
			busy, last = true, "queues: "+err.Error()
		}
		for _, q := range tasks.QueuesAmong(known) {
			if !slices.Contains(known, q) {
				continue
			}
			info, err := insp.GetQueueInfo(q)
			if err != nil {
				busy, last = true, last+q+": "+err.Error()+"; "
				continue
			}
			last += fmt.Sprintf("%s: pending %d active %d scheduled %d retry %d archived %d; ",
				q, info.Pending, info.Active, info.Scheduled, info.Retry, info.Archived)
			busy = busy || info.Pending+info.Scheduled+info.Retry > 0
		}
		if !busy && idleSince.IsZero() {
			idleSince = time.Now()
		} else if busy {
			idleSince = time.Time{}
		}
		if !idleSince.IsZero() && time.Since(idleSince) > 2*time.Second {
			return last, nil
		}
		if time.Now().After(deadline) {
			return last, fmt.Errorf("%w: Asynq queues not empty after %s: %s", ErrTimeout, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
