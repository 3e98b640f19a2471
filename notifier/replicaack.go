package notifier

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrReplicaAck: the notification is in the Redis master but fewer replicas
// than WithReplicaAck asked for confirmed it within the timeout, so a
// failover now could lose it. Retrying Notify with the same idempotency key
// is safe (same id, no second notification) and waits for the replicas again.
var ErrReplicaAck = errors.New("notifier: too few Redis replicas acknowledged the notification")

// ReplicaAckError says how many replicas acknowledged; it matches
// ErrReplicaAck with errors.Is.
type ReplicaAckError struct {
	ID       string // the notification id
	Acked    int64  // replicas that acknowledged (0 on error)
	Wanted   int
	RedisErr error // the WAIT command's own error, if any
}

func (e *ReplicaAckError) Error() string {
	if e.RedisErr != nil {
		return fmt.Sprintf("%v: %s: WAIT: %v", ErrReplicaAck, e.ID, e.RedisErr)
	}
	return fmt.Sprintf("%v: %s: %d of %d", ErrReplicaAck, e.ID, e.Acked, e.Wanted)
}

func (e *ReplicaAckError) Unwrap() error { return ErrReplicaAck }

// WithReplicaAck makes Notify (and the outbox relay) wait, after each
// enqueue, until n Redis replicas have the write or timeout passes (Redis
// WAIT), and return a *ReplicaAckError if fewer did. Redis replicates
// asynchronously: without it a master that dies right after answering can
// take the last notifications with it when a replica is promoted. n <= 0
// turns it off (the default).
func WithReplicaAck(n int, timeout time.Duration) Option {
	return func(o *options) { o.replicaAck, o.ackTimeout = n, timeout }
}

// ackKey marks a context whose enqueue must be followed by WAIT; the value
// is the *replicaAck the WAIT result is written to.
type ackKey struct{}

type replicaAck struct {
	ran      bool
	replicas int64
	err      error
}

// ackScripter is the go-redis client Asynq enqueues through when replica
// acks are on. WAIT counts only the writes of the connection it runs on, and
// Asynq's Client does not lend its connection out; but Asynq enqueues with
// one Lua script (EVALSHA, EVAL if the script is not loaded), so this
// wrapper sends that script and WAIT in one pipeline, which go-redis writes
// on a single connection.
//
// In a Redis Cluster WAIT has no key to be routed by, and it counts only
// the replicas of the node it runs on: the pipeline goes to the master of
// the script's first key's slot (the task's queue, asynq:{queue}:…), whose
// replicas are the ones that matter. If the slot moves at that moment the
// script fails with MOVED and Notify returns the error; retrying is safe.
type ackScripter struct {
	redis.UniversalClient
	pipe     redis.Cmdable // UniversalClient, with a read timeout WAIT fits in
	replicas int
	timeout  time.Duration
}

func newAckScripter(rdb redis.UniversalClient, n int, timeout time.Duration) *ackScripter {
	s := &ackScripter{UniversalClient: rdb, pipe: rdb, replicas: n, timeout: timeout}
	// A pipeline's replies are read with the client's read timeout, not
	// WAIT's own: give the pipeline room for the wait.
	if c, ok := rdb.(*redis.Client); ok && c.Options().ReadTimeout < timeout+time.Second {
		s.pipe = c.WithTimeout(timeout + time.Second)
	}
	return s
}

func (s *ackScripter) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return s.withWait(ctx, keys, func(c redis.Cmdable) *redis.Cmd { return c.EvalSha(ctx, sha1, keys, args...) })
}

func (s *ackScripter) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return s.withWait(ctx, keys, func(c redis.Cmdable) *redis.Cmd { return c.Eval(ctx, script, keys, args...) })
}

// withWait runs the script, followed by WAIT on the same connection if ctx
// asks for it.
func (s *ackScripter) withWait(ctx context.Context, keys []string, script func(redis.Cmdable) *redis.Cmd) *redis.Cmd {
	ack, ok := ctx.Value(ackKey{}).(*replicaAck)
	if !ok {
		return script(s.UniversalClient)
	}
	var cmd *redis.Cmd
	var wait *redis.Cmd
	key := ""
	if len(keys) > 0 {
		key = keys[0]
	}
	pipe, err := s.pipeFor(ctx, key)
	if err != nil {
		ack.ran, ack.err = true, err
		cmd = redis.NewCmd(ctx)
		cmd.SetErr(err)
		return cmd
	}
	// Errors are in the commands: the script's goes back to Asynq, WAIT's to
	// enqueue.
	_, _ = pipe.Pipelined(ctx, func(p redis.Pipeliner) error {
		cmd = script(p)
		wait = p.Do(ctx, "wait", s.replicas, s.timeout.Milliseconds())
		return nil
	})
	ack.ran = true
	ack.replicas, ack.err = wait.Int64()
	return cmd
}

// confirmReplicated is WAIT for an enqueue that found its task already
// there (an earlier call's, perhaps not replicated yet) and so wrote
// nothing. WAIT covers everything the master had when this connection last
// wrote, so a small write first makes it cover that earlier enqueue too.
// The write's key carries queue's hash tag, so that in a cluster it goes
// to the master holding queue.
func (s *ackScripter) confirmReplicated(ctx context.Context, ack *replicaAck, queue string) {
	key := "notifyd:replica_ack:{" + queue + "}"
	pipe, err := s.pipeFor(ctx, key)
	if err != nil {
		ack.ran, ack.err = true, err
		return
	}
	var wait *redis.Cmd
	_, err = pipe.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, key, time.Now().UnixNano(), time.Minute)
		wait = p.Do(ctx, "wait", s.replicas, s.timeout.Milliseconds())
		return nil
	})
	ack.ran = true
	ack.replicas, ack.err = wait.Int64()
	if ack.err == nil && err != nil {
		ack.err = err
	}
}

// pipeFor is the client a write to key and its WAIT are pipelined on: the
// master of key's slot for a cluster client, with a read timeout WAIT fits
// in; s.pipe otherwise.
func (s *ackScripter) pipeFor(ctx context.Context, key string) (redis.Cmdable, error) {
	cc, ok := s.UniversalClient.(*redis.ClusterClient)
	if !ok {
		return s.pipe, nil
	}
	node, err := cc.MasterForKey(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("replica ack: master of %s: %w", key, err)
	}
	if node.Options().ReadTimeout < s.timeout+time.Second {
		return node.WithTimeout(s.timeout + time.Second), nil
	}
	return node, nil
}

// check turns the WAIT result into the error Notify returns.
func (a *replicaAck) check(id string, wanted int) error {
	switch {
	case !a.ran:
		return &ReplicaAckError{ID: id, Wanted: wanted, RedisErr: errors.New("enqueue did not run the script the ack waits for")}
	case a.err != nil:
		return &ReplicaAckError{ID: id, Wanted: wanted, RedisErr: a.err}
	case a.replicas < int64(wanted):
		return &ReplicaAckError{ID: id, Acked: a.replicas, Wanted: wanted}
	}
	return nil
}
