package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/notifyd/notifyd/internal/metrics"
	"github.com/notifyd/notifyd/internal/pullfeed"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/tasks"
)

// Pull receivers (delivery "pull") are never called. Each attempt of the
// schedule is an offer instead: recorded like an attempt (outcome
// "offered", the notification stays pending) and announced to the API
// processes streaming to the receiver, which send it on the stream. The
// receiver's acknowledgement, through the API, makes it delivered. One task
// more than the schedule's attempts follows the last offer: if the
// notification is still pending then, it ends failed.

// notAcknowledged is the last error of a pull notification that ran out of
// offers.
const notAcknowledged = "not_acknowledged"

// lastTask is the highest task number a notification's schedule queues:
// its last attempt, or for a pull receiver the expiry after its last offer.
func lastTask(rc *receiverConfig, st store.DeliveryState) int {
	if rc.Pull() {
		return st.MaxAttempts + 1
	}
	return st.MaxAttempts
}

// offer makes the attempt a pull receiver gets: none, only a record that
// it was offered (see record). Past the last offer it expires the
// notification instead.
func (h *handler) offer(ctx context.Context, dv *delivery) (proceed bool, err error) {
	if dv.d.Attempt > dv.st.MaxAttempts {
		return false, h.expire(ctx, dv.d)
	}
	dv.res = attemptResult{Started: time.Now(), Outcome: store.OutcomeOffered}
	metrics.Attempts.WithLabelValues(store.OutcomeOffered).Inc()
	return true, nil
}

// expire fails a pull notification that was offered as often as its
// schedule allows and never acknowledged, as a push notification fails
// after its last attempt.
func (h *handler) expire(ctx context.Context, d *tasks.Deliver) error {
	failed, err := h.failer.FailPending(ctx, d.ID, notAcknowledged)
	if err != nil {
		return h.infra("postgres", fmt.Errorf("expire %s: %w", d.ID, err))
	}
	if failed {
		metrics.Terminal.WithLabelValues(store.StatusFailed).Inc()
		h.logger.Info("notification failed: offered to its pull receiver and never acknowledged",
			"notification_id", d.ID, "receiver_id", d.ReceiverID)
	}
	return nil
}

// manualOffer is a manual redelivery to a pull receiver: one more offer on
// its stream, recorded with the redelivery's negative number.
func (h *handler) manualOffer(ctx context.Context, d *tasks.Deliver) error {
	res := attemptResult{Started: time.Now(), Outcome: store.OutcomeOffered}
	metrics.Attempts.WithLabelValues(store.OutcomeOffered).Inc()
	if err := h.recorder.Record(ctx, store.AttemptRecord{Attempt: attemptRow(d, -d.Manual, &res)}); err != nil {
		return h.infra("postgres", fmt.Errorf("redeliver %s: record: %w", d.ID, err))
	}
	h.announce(ctx, d, -d.Manual)
	return nil
}

// announce tells the streams an offer is on record. A failure is logged,
// not returned: the offer is recorded, and streams catch up from Postgres.
func (h *handler) announce(ctx context.Context, d *tasks.Deliver, attempt int) {
	err := pullfeed.Publish(ctx, h.rdb, d.ReceiverID, pullfeed.Offer{NotificationID: d.ID, Attempt: attempt})
	if err != nil {
		metrics.InfraErrors.WithLabelValues("redis").Inc()
		h.logger.Warn("offer not announced; streams catch up from Postgres", "notification_id", d.ID,
			"receiver_id", d.ReceiverID, "err", err)
	}
}
