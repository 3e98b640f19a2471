// Package enqueue puts notifications' tasks on Asynq, many per task when
// they arrive together (tasks.TypeBatch): the Go client, the HTTP ingest,
// the outbox relay and the re-drive job all queue through a Producer, and
// concurrent single enqueues meet in a Linger.
//
// One Asynq task per notification made a task id per notification the
// guard against queueing it twice: Asynq refuses a second task with a live
// id. A batch has one task id, so each member also gets a marker, a Redis
// string naming the task that holds it and its content's hash, written
// (SET NX) in one script per batch before the batch is queued. A repeat
// that finds a live marker is "already queued" (same content) or a conflict
// (other content), as it was with a task id. Markers only advise: a marker
// whose task is gone is taken over, so a marker left behind by a failed
// enqueue or a killed worker can never make a notification look queued
// when it is not; at worst a repeat racing its first enqueue is queued
// twice, which the worker records once (it checks Postgres for every
// member).
package enqueue

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/ingest"
	"github.com/notifyd/notifyd/internal/taskauth"
	"github.com/notifyd/notifyd/internal/tasks"
)

// Status is what an enqueue did with one notification.
type Status int

const (
	// Queued: a new task holds it.
	Queued Status = iota + 1
	// AlreadyQueued: a task in Redis already holds it with the same event
	// type and payload; nothing was written for it.
	AlreadyQueued
	// Conflict: a task in Redis already holds its id with another event
	// type or payload (an idempotency key used twice); nothing was written.
	Conflict
)

func (s Status) String() string {
	switch s {
	case Queued:
		return "queued"
	case AlreadyQueued:
		return "already_queued"
	case Conflict:
		return "conflict"
	}
	return "failed"
}

// Result is one notification's outcome. Err is set when its task could not
// be written (Status is then 0); QueuedHash and TypeDiffers describe the
// content already queued when Status is Conflict.
type Result struct {
	Status      Status
	QueuedHash  string // ingest.PayloadHash of the payload queued first
	TypeDiffers bool
	Err         error
}

// Producer enqueues tasks. It is safe for concurrent use.
type Producer struct {
	rdb       redis.UniversalClient // markers
	q         tasks.Enqueuer
	inspector *asynq.Inspector
	keys      *taskauth.Keyring
}

// New returns a Producer writing markers through rdb and tasks through q
// (an Asynq client on the same Redis; the Go client's replica-ack wrapper
// for instance), sealing tasks with keys (nil: unsigned).
func New(rdb redis.UniversalClient, q tasks.Enqueuer, keys *taskauth.Keyring) *Producer {
	return &Producer{rdb: rdb, q: q, inspector: asynq.NewInspectorFromRedisClient(rdb), keys: keys}
}

// EnqueueMany queues ds (any queues, any number; opts apply to every task)
// and returns one Result per member, in order. Members sharing a queue go
// in batches of up to tasks.MaxBatchMembers; a member alone in its queue
// is an ordinary TypeDeliver task. Two members with the same task id are
// queued once: the second is AlreadyQueued, or a Conflict if its content
// differs. The error is non-nil when any member's Err is. Each member gets
// a producer span in ctx (tasks.TraceEnqueue).
func (p *Producer) EnqueueMany(ctx context.Context, ds []*tasks.Deliver, opts ...asynq.Option) ([]Result, error) {
	finish := make([]func(bool, error), len(ds))
	for i, d := range ds {
		finish[i] = tasks.TraceEnqueue(ctx, d)
	}
	res, err := p.Enqueue(ctx, ds, opts...)
	for i, f := range finish {
		f(res[i].Status == AlreadyQueued, res[i].Err)
	}
	return res, err
}

// Enqueue is EnqueueMany without spans, for callers that started each
// member's span in the member's own context (Linger).
func (p *Producer) Enqueue(ctx context.Context, ds []*tasks.Deliver, opts ...asynq.Option) ([]Result, error) {
	// Members are grouped by queue, and a queue is the receiver's shard:
	// a member without its own shard count takes q's (tasks.Sharded).
	if shards := tasks.ShardsOf(p.q); shards > 1 {
		for _, d := range ds {
			if d.QueueShards == 0 {
				d.QueueShards = shards
			}
		}
	}
	res := make([]Result, len(ds))
	groups, dups := group(ds)
	for _, idx := range groups {
		for _, chunk := range split(ds, idx) {
			p.enqueueGroup(ctx, ds, chunk, res, opts)
		}
	}
	for dup, first := range dups {
		res[dup] = sameAs(ds[dup], ds[first], res[first])
	}
	var errs []error
	for i := range res {
		if res[i].Err != nil {
			errs = append(errs, res[i].Err)
		}
	}
	if len(errs) > 0 {
		return res, fmt.Errorf("enqueue: %d of %d failed: %w", len(errs), len(ds), errs[0])
	}
	return res, nil
}

// group returns the indices of ds by queue, first appearance of each task
// id only, and the later duplicates with the index of their first.
func group(ds []*tasks.Deliver) (byQueue map[string][]int, dups map[int]int) {
	byQueue = make(map[string][]int, 2)
	seen := make(map[string]int, len(ds))
	for i, d := range ds {
		id := d.TaskID()
		if first, ok := seen[id]; ok {
			if dups == nil {
				dups = map[int]int{}
			}
			dups[i] = first
			continue
		}
		seen[id] = i
		byQueue[d.Queue()] = append(byQueue[d.Queue()], i)
	}
	return byQueue, dups
}

// split cuts one queue's members into chunks within a batch's bounds.
func split(ds []*tasks.Deliver, idx []int) [][]int {
	var chunks [][]int
	start, size := 0, 0
	for k, i := range idx {
		s := ds[i].EncodedSize()
		if k > start && (k-start >= tasks.MaxBatchMembers || size+s > tasks.MaxBatchBytes/2) {
			chunks = append(chunks, idx[start:k])
			start, size = k, 0
		}
		size += s
	}
	return append(chunks, idx[start:])
}

// sameAs is the result of a member whose task id an earlier member of the
// same call has.
func sameAs(d, first *tasks.Deliver, r Result) Result {
	if r.Err != nil || r.Status == Conflict {
		return r
	}
	if ingest.SameContent(first.EventType, first.Payload, d.EventType, d.Payload) {
		return Result{Status: AlreadyQueued}
	}
	return Result{Status: Conflict, QueuedHash: ingest.PayloadHash(first.Payload), TypeDiffers: first.EventType != d.EventType}
}

// enqueueGroup queues one chunk of one queue's members. A lone member is
// an ordinary task whose id guards it; more share a batch task guarded by
// markers.
func (p *Producer) enqueueGroup(ctx context.Context, ds []*tasks.Deliver, idx []int, res []Result, opts []asynq.Option) {
	if len(idx) == 1 {
		res[idx[0]] = p.enqueueSingle(ctx, ds[idx[0]], opts)
		return
	}
	batchID := tasks.NewBatchID()
	members := make([]*tasks.Deliver, len(idx))
	for k, i := range idx {
		members[k] = ds[i]
	}
	claims, err := claim(ctx, p.rdb, batchID, members)
	if err != nil {
		for _, i := range idx {
			res[i].Err = err
		}
		return
	}
	var fresh []int // indices into idx of members to queue now
	for k, c := range claims {
		switch {
		case c.claimed:
			fresh = append(fresh, k)
		case c.own:
			// Its own task (a deferral or retry a worker queued) is in Redis.
			res[idx[k]] = p.enqueueSingle(ctx, members[k], opts)
		default:
			res[idx[k]] = c.compare(members[k])
		}
	}
	p.enqueueFresh(ctx, batchID, members, fresh, idx, res, opts)
}

// enqueueFresh queues the members whose markers were claimed: one batch
// task, or an ordinary task when only one is left. If the enqueue fails the
// markers are removed (best effort: a marker whose task never appeared is
// taken over anyway).
func (p *Producer) enqueueFresh(ctx context.Context, batchID string, members []*tasks.Deliver, fresh, idx []int, res []Result, opts []asynq.Option) {
	switch len(fresh) {
	case 0:
		return
	case 1:
		res[idx[fresh[0]]] = p.enqueueSingle(ctx, members[fresh[0]], opts)
		return
	}
	batch := make([]*tasks.Deliver, len(fresh))
	for k, f := range fresh {
		batch[k] = members[f]
	}
	task, err := tasks.BatchTask(p.keys, batchID, batch, opts...)
	if err == nil {
		_, err = p.q.EnqueueContext(ctx, task)
	}
	if err != nil {
		err = fmt.Errorf("enqueue batch of %d: %w", len(batch), err)
		_ = Unmark(context.WithoutCancel(ctx), p.rdb, batchID, batch)
	}
	for _, f := range fresh {
		res[idx[f]] = Result{Status: Queued, Err: err}
		if err != nil {
			res[idx[f]].Status = 0
		}
	}
}

// enqueueSingle queues d as its own task. Asynq refusing its id means a
// task for it is in Redis: same content is AlreadyQueued, other content a
// Conflict. A task that ended between the refusal and the comparison is
// queued again, a bounded number of times (the worker then compares with
// Postgres).
func (p *Producer) enqueueSingle(ctx context.Context, d *tasks.Deliver, opts []asynq.Option) Result {
	for try := 0; ; try++ {
		task, err := d.Task(p.keys, opts...)
		if err != nil {
			return Result{Err: err}
		}
		_, err = p.q.EnqueueContext(ctx, task)
		switch {
		case err == nil:
			return Result{Status: Queued}
		case !errors.Is(err, asynq.ErrTaskIDConflict):
			return Result{Err: fmt.Errorf("enqueue %s: %w", d.TaskID(), err)}
		}
		r, gone := p.compareQueued(d)
		if !gone || try == 2 {
			return r
		}
	}
}

// compareQueued reads the task Redis holds under d's task id.
func (p *Producer) compareQueued(d *tasks.Deliver) (r Result, gone bool) {
	info, err := p.inspector.GetTaskInfo(d.Queue(), d.TaskID())
	if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		return Result{Status: AlreadyQueued}, true
	}
	if err != nil {
		return Result{Err: fmt.Errorf("read queued %s: %w", d.TaskID(), err)}, false
	}
	// Only compared, never delivered: the worker checks seals.
	queued, err := tasks.Decode(info.Payload)
	if err != nil {
		return Result{Err: fmt.Errorf("read queued %s: %w", d.TaskID(), err)}, false
	}
	if ingest.SameContent(queued.EventType, queued.Payload, d.EventType, d.Payload) {
		return Result{Status: AlreadyQueued}, false
	}
	return Result{Status: Conflict, QueuedHash: ingest.PayloadHash(queued.Payload), TypeDiffers: queued.EventType != d.EventType}, false
}

// marker value: "<task id>|<payload hash>|<event type>".
func markerValue(taskID string, d *tasks.Deliver) string {
	return taskID + "|" + ingest.PayloadHash(d.Payload) + "|" + d.EventType
}

// claimResult is one member's marker outcome.
type claimResult struct {
	claimed bool   // the marker is this batch's now
	own     bool   // the member's own task (by its task id) is in Redis
	found   string // a live marker's value, otherwise
}

// compare turns a live marker into AlreadyQueued or Conflict.
func (c claimResult) compare(d *tasks.Deliver) Result {
	parts := strings.SplitN(c.found, "|", 3)
	if len(parts) != 3 {
		return Result{Status: AlreadyQueued}
	}
	hash, eventType := parts[1], parts[2]
	if eventType == d.EventType && hash == ingest.PayloadHash(d.Payload) {
		return Result{Status: AlreadyQueued}
	}
	return Result{Status: Conflict, QueuedHash: hash, TypeDiffers: eventType != d.EventType}
}
