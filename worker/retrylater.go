package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"

	"github.com/notifyd/notifyd/internal/metrics"
)

// retryLater hands a task back to Asynq with a chosen delay. It is used when
// notifyd's own dependencies fail or a task arrives early; it never counts as
// a delivery attempt.
type retryLater struct {
	after time.Duration
	err   error
}

// Reasons a delivery is deferred without an attempt.
var (
	errCircuitOpen  = errors.New("receiver's circuit is open")
	errReceiverBusy = errors.New("receiver's concurrency limit reached")
	errEarly        = errors.New("task arrived early")
)

func (e *retryLater) Error() string { return fmt.Sprintf("retry in %s: %v", e.after, e.err) }
func (e *retryLater) Unwrap() error { return e.err }

// retryDelay is the Asynq RetryDelayFunc: a retryLater's own delay, else a
// capped exponential backoff for infrastructure errors (n counts Asynq's
// retries of this one task).
func retryDelay(n int, err error, _ *asynq.Task) time.Duration {
	var rl *retryLater
	if errors.As(err, &rl) {
		return rl.after
	}
	d := time.Second << min(n, 5) // 1 s … 32 s
	return d/2 + rand.N(d/2+1)
}

// maxEarlyWait is how early a task may start before we hand it back instead
// of sleeping. Asynq stores due times in whole seconds and so releases a task
// up to a second early; sleeping out that remainder makes retries start
// within a few milliseconds of the plan.
const maxEarlyWait = 1500 * time.Millisecond

func (h *handler) waitUntilDue(ctx context.Context, due *time.Time) error {
	if due == nil {
		return nil
	}
	wait := time.Until(*due)
	if wait <= 0 {
		return nil
	}
	if wait > maxEarlyWait {
		metrics.Deferred.WithLabelValues("early").Inc()
		return &retryLater{after: wait, err: errEarly}
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
