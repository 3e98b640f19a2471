package query

// Concurrent ingest requests share their Postgres work: one statement reads
// the receivers of every notification waiting, one INSERT records them all
// (a round trip per request and statement was the API's largest cost in the
// ingest benchmark, mostly in syscalls). Each request still answers only
// once its own notification is on record, with its own outcome.

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/batcher"
	"github.com/notifyd/notifyd/internal/callbackhosts"
	"github.com/notifyd/notifyd/internal/store"
)

// maxIngestBatch bounds the notifications recorded by one statement.
const maxIngestBatch = 500

// ingestLinger is how long a busy flusher waits for more requests before a
// batch goes out (internal/batcher: only when the previous batch had more
// than one; an idle API records a lone request at once).
const ingestLinger = time.Millisecond

// ingestItem is one notification waiting for its batch.
type ingestItem struct {
	nn   store.NewNotification // without MaxAttempts and FailedWith: the flush sets them from the receiver
	done chan ingestOutcome    // buffered: the flush never waits for the request
}

type ingestOutcome struct {
	n       *store.Notification
	created bool
	err     error
}

// ingestRecorder groups ingested notifications into batches.
type ingestRecorder struct {
	s       *Server
	batches *batcher.Batcher[*ingestItem, uuid.UUID]
}

func newIngestRecorder(s *Server) *ingestRecorder {
	r := &ingestRecorder{s: s}
	// One notification id once per batch: the second request with a key
	// must see the first one's row, and answer as its replay.
	byID := func(it *ingestItem) uuid.UUID { return it.nn.ID }
	r.batches = batcher.New(maxIngestBatch, ingestLinger, r.flush, byID)
	r.batches.Start()
	return r
}

// record checks nn's receiver and records nn (see Server.ingest): it
// returns the stored notification and whether this call created it.
func (r *ingestRecorder) record(ctx context.Context, nn store.NewNotification) (*store.Notification, bool, error) {
	it, err := r.add(ctx, nn)
	if err != nil {
		return nil, false, err
	}
	return it.wait(ctx)
}

// add queues nn for the next batch without waiting for it: a batch request
// adds all its notifications, in order, before it waits for the first.
func (r *ingestRecorder) add(ctx context.Context, nn store.NewNotification) (*ingestItem, error) {
	it := &ingestItem{nn: nn, done: make(chan ingestOutcome, 1)}
	if err := r.batches.Add(ctx, it); err != nil {
		return nil, err
	}
	return it, nil
}

// wait is record's outcome for an added item.
func (it *ingestItem) wait(ctx context.Context) (*store.Notification, bool, error) {
	select {
	case o := <-it.done:
		return o.n, o.created, o.err
	case <-ctx.Done():
		// The batch may still record it: as before batching, a request
		// that timed out may have been recorded, and its retry replays.
		return nil, false, ctx.Err()
	}
}

// close stops the flusher once the requests in flight are recorded.
func (r *ingestRecorder) close() { r.batches.Close(10 * time.Second) }

// flush records a batch: the receivers' checks, then one INSERT for the
// notifications that pass them.
func (r *ingestRecorder) flush(batch []*ingestItem) {
	ctx, cancel := context.WithTimeout(context.Background(), r.s.cfg.RequestTimeout)
	defer cancel()
	ids := make([]uuid.UUID, 0, len(batch))
	seen := make(map[uuid.UUID]bool, len(batch))
	for _, it := range batch {
		if !seen[it.nn.ReceiverID] {
			seen[it.nn.ReceiverID] = true
			ids = append(ids, it.nn.ReceiverID)
		}
	}
	receivers, err := r.s.store.IngestReceivers(ctx, ids)
	if err != nil {
		fail(batch, err)
		return
	}
	var passed []*ingestItem
	var ns []store.NewNotification
	for _, it := range batch {
		if err := r.s.prepareNotification(&it.nn, receivers[it.nn.ReceiverID]); err != nil {
			it.done <- ingestOutcome{err: err}
			continue
		}
		passed, ns = append(passed, it), append(ns, it.nn)
	}
	if len(ns) == 0 {
		return
	}
	got, errs, err := r.s.store.InsertNotifications(ctx, ns)
	if err != nil {
		fail(passed, err)
		return
	}
	for i, it := range passed {
		it.done <- ingestOutcome{n: got[i].Notification, created: got[i].Created, err: errs[i]}
	}
}

func fail(items []*ingestItem, err error) {
	for _, it := range items {
		it.done <- ingestOutcome{err: err}
	}
}

// prepareNotification checks that receiver r (nil: none) takes nn, and
// sets what follows from r: nn's attempts, and its failure when r is
// disabled (accepted all the same, so the producer need not care, and on
// record for the receiver's reconciliation and recover).
func (s *Server) prepareNotification(nn *store.NewNotification, r *store.IngestReceiver) error {
	switch {
	case r == nil:
		return fieldError("receiver_id", "names no receiver")
	case !r.Active:
		return fieldError("receiver_id", "names a deactivated receiver")
	case callbackhosts.Allowed(r.CallbackHosts, nn.CallbackURL) != nil:
		return fieldError("callback_url", "names a host outside the receiver's callback_hosts")
	}
	policy := s.cfg.Retry
	if r.Retry != nil {
		policy = r.Retry.Merge(s.cfg.Retry)
	}
	nn.MaxAttempts = policy.MaxAttempts
	if r.Status == store.ReceiverDisabled {
		nn.FailedWith = store.DisabledError
	}
	return nil
}
