package worker

import "time"

// batchLinger is the batched writers' wait for company (see recorder and
// starter). A flusher sends whatever has queued up; when its previous batch
// had more than one row (others are starting or recording too), it first
// waits linger once for more. Postgres answers quickly enough that batches
// otherwise stayed at a few rows, and its cost is mostly per statement. An
// idle worker's batches of one go out at once.
type batchLinger struct {
	linger time.Duration
	busy   bool // the previous batch had more than one row
	waited bool // this batch has had its wait
}

// start begins a batch.
func (b *batchLinger) start() { b.waited = !b.busy }

// again reports, when the queue has run dry, whether to look at it once
// more, after waiting.
func (b *batchLinger) again() bool {
	if b.waited {
		return false
	}
	b.waited = true
	time.Sleep(b.linger)
	return true
}

// sent records the size of the batch that went out.
func (b *batchLinger) sent(rows int) { b.busy = rows > 1 }
