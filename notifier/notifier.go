// Package notifier is the Go client producers use to hand notifications to
// notifyd. Notify validates the notification, checks that its receiver
// exists, and enqueues it on Asynq in Redis; a notifyd worker then delivers
// it. It returns the notification's id, which is derived from (receiver,
// idempotency key): calling Notify again with the same key returns the same
// id and does not create a second notification.
//
// Notify writes only to Redis, so the notification is as durable as Redis
// is (see deploy/redis.conf for AOF settings). A producer that must not lose
// a notification if Redis loses data, or that wants the notification sent
// only if its own database transaction commits, uses the outbox instead.
//
// Enqueueing is traced with OpenTelemetry through the producer's global
// TracerProvider: the notification's delivery joins the trace of the span
// in Notify's context (no provider set: nothing is recorded).
package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/callbackhosts"
	"github.com/notifyd/notifyd/internal/enqueue"
	"github.com/notifyd/notifyd/internal/ingest"
	"github.com/notifyd/notifyd/internal/netguard"
	"github.com/notifyd/notifyd/internal/redisurl"
	"github.com/notifyd/notifyd/internal/registry"
	"github.com/notifyd/notifyd/internal/taskauth"
	"github.com/notifyd/notifyd/internal/tasks"
	"github.com/notifyd/notifyd/internal/ttlcache"
)

// Errors callers branch on. Validation failures are *ValidationError, which
// matches ErrInvalidNotification with errors.Is.
var (
	ErrInvalidNotification = ingest.ErrInvalid
	ErrUnknownReceiver     = errors.New("notifier: unknown receiver")
	ErrReceiverInactive    = errors.New("notifier: receiver is not active")
	// ErrRegistryUnavailable: notifyd's receiver registry in Redis is empty
	// (Redis restarted and no notifyd process has re-synced it yet). Retry
	// shortly.
	ErrRegistryUnavailable = errors.New("notifier: receiver registry not loaded; is notifyd running?")
	// ErrCallbackHostNotAllowed: the notification's CallbackURL names a host
	// outside its receiver's callback_hosts. The error is a
	// *ValidationError for field "callback_url" that also matches this.
	ErrCallbackHostNotAllowed = callbackhosts.ErrNotAllowed
)

// TaskKey is the key ring that signs the tasks a Client enqueues: notifyd's
// NOTIFYD_TASK_KEY, read with ParseTaskKey.
type TaskKey struct{ keys *taskauth.Keyring }

// ParseTaskKey reads a key ring in NOTIFYD_TASK_KEY's format
// ("id:base64-secret[,id:base64-secret…]"; the first signs). Workers with
// NOTIFYD_TASK_KEY set drop tasks that no key of theirs signed.
func ParseTaskKey(spec string) (*TaskKey, error) {
	k, err := taskauth.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("notifier: %w", err)
	}
	return &TaskKey{keys: k}, nil
}

// TaskKeyFromKeyring wraps a key ring notifyd already parsed (its own outbox
// relay, from NOTIFYD_TASK_KEY); producers use ParseTaskKey.
func TaskKeyFromKeyring(k *taskauth.Keyring) *TaskKey { return &TaskKey{keys: k} }

// WithTaskKey signs every task the client enqueues with k (nil: unsigned,
// which only workers without NOTIFYD_TASK_KEY accept).
func WithTaskKey(k *TaskKey) Option {
	return func(o *options) {
		o.keys = nil
		if k != nil {
			o.keys = k.keys
		}
	}
}

// ValidationError names the field that was refused.
type ValidationError = ingest.FieldError

// Notification is what a producer sends.
type Notification struct {
	ReceiverID     string
	EventType      string // e.g. "trade.paid"
	IdempotencyKey string // the producer's business key, e.g. an order number
	CallbackURL    string // optional: overrides the receiver's default URL
	Payload        json.RawMessage
}

// Option configures a Client.
type Option func(*options)

type options struct {
	rules    ingest.Rules
	cacheTTL time.Duration
	// outbox is the producer's outbox table (EnqueueTx, Relay).
	outbox string
	// replicaAck > 0: WAIT for that many replicas after each enqueue.
	replicaAck int
	ackTimeout time.Duration
	keys       *taskauth.Keyring
	// linger: how long Notify waits, under load, for concurrent calls to
	// share its task (enqueue.Linger); 0: every call its own task.
	linger time.Duration
}

// WithMaxPayloadSize sets the largest payload accepted (default 256 KiB).
// It should match the server's NOTIFYD_MAX_PAYLOAD_BYTES.
func WithMaxPayloadSize(n int) Option { return func(o *options) { o.rules.MaxPayload = n } }

// WithAllowPrivateTargets accepts callback URLs on private or loopback
// addresses (development and tests). Workers enforce their own policy at
// connect time regardless.
func WithAllowPrivateTargets(allow bool) Option {
	return func(o *options) { o.rules.Targets = netguard.Policy{AllowPrivate: allow} }
}

// WithLinger sets how long Notify waits for concurrent Notify calls to share
// one task with it (default 1 ms), like a Kafka producer's linger.ms. The
// wait applies only under load: a call that finds no other in progress is
// sent at once, alone. 0 turns batching off (every call its own task).
func WithLinger(d time.Duration) Option { return func(o *options) { o.linger = max(d, 0) } }

// WithReceiverCacheTTL sets how long a receiver's existence is cached
// (default 5 s; a deactivated receiver is refused after at most this long).
func WithReceiverCacheTTL(d time.Duration) Option { return func(o *options) { o.cacheTTL = d } }

// Client enqueues notifications. It is safe for concurrent use.
type Client struct {
	rdb   redis.UniversalClient
	asynq *asynq.Client
	// producer writes tasks and batches (internal/enqueue); linger gathers
	// concurrent Notify calls for it (nil: WithLinger(0)).
	producer *enqueue.Producer
	linger   *enqueue.Linger
	acks     *ackScripter // nil unless WithReplicaAck
	ownsRDB  bool         // Close closes rdb
	opts     options
	// active holds the receivers found active, for opts.cacheTTL.
	active *ttlcache.Cache[uuid.UUID, struct{}]
	// hosts holds receivers' callback_hosts (nil: unrestricted), for
	// opts.cacheTTL; read only for notifications with a CallbackURL.
	hosts *ttlcache.Cache[uuid.UUID, []string]
}

// activeCacheSize bounds the receivers a Client remembers as active; beyond
// it the cache starts over.
const activeCacheSize = 10000

// New connects to the Redis that notifyd's workers read, e.g.
// asynq.RedisClientOpt{Addr: "127.0.0.1:6379"} or the result of
// ParseRedisURL. NewFromURL takes notifyd's own NOTIFYD_REDIS_URL.
func New(redisOpt asynq.RedisConnOpt, opts ...Option) (*Client, error) {
	rdb, ok := redisOpt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return nil, fmt.Errorf("notifier: unsupported Redis connection option %T", redisOpt)
	}
	c := NewFromRedisClient(rdb, opts...)
	c.ownsRDB = true
	return c, nil
}

// ParseRedisURL reads a Redis URL exactly as notifyd reads NOTIFYD_REDIS_URL
// (one server, rediss:// for TLS, ACL user:password, or Sentinel with
// ?master_name=…&addr=…; see the README's configuration table) into an
// Asynq connection option.
func ParseRedisURL(url string) (asynq.RedisConnOpt, error) {
	c, err := redisurl.Parse(url)
	if err != nil {
		return nil, fmt.Errorf("notifier: %w", err)
	}
	return c.AsynqOpt(), nil
}

// NewFromURL connects to the Redis at url, the same URL notifyd's processes
// have in NOTIFYD_REDIS_URL; with a Sentinel URL the client follows the
// master through failovers. Close closes the connection.
func NewFromURL(url string, opts ...Option) (*Client, error) {
	rc, err := redisurl.Parse(url)
	if err != nil {
		return nil, fmt.Errorf("notifier: %w", err)
	}
	c := NewFromRedisClient(rc.Client(), opts...)
	c.ownsRDB = true
	return c, nil
}

// NewFromRedisClient uses an existing go-redis client. Close does not close it.
func NewFromRedisClient(rdb redis.UniversalClient, opts ...Option) *Client {
	o := options{cacheTTL: 5 * time.Second, linger: enqueue.DefaultLinger}
	for _, opt := range opts {
		opt(&o)
	}
	if o.rules.Targets.Hint == "" {
		o.rules.Targets.Hint = "notifier.WithAllowPrivateTargets(true) allows it for development"
	}
	c := &Client{rdb: rdb, opts: o, active: ttlcache.New[uuid.UUID, struct{}](o.cacheTTL, activeCacheSize),
		hosts: ttlcache.New[uuid.UUID, []string](o.cacheTTL, activeCacheSize)}
	if o.replicaAck > 0 {
		c.acks = newAckScripter(rdb, o.replicaAck, o.ackTimeout)
		c.asynq = asynq.NewClientFromRedisClient(c.acks)
	} else {
		c.asynq = asynq.NewClientFromRedisClient(rdb)
	}
	c.producer = enqueue.New(rdb, c.asynq, o.keys)
	if o.linger > 0 {
		c.linger = enqueue.NewLinger(func(ctx context.Context, ds []*tasks.Deliver) []enqueue.Result {
			return c.write(ctx, ds, false)
		}, o.linger, 0)
	}
	return c
}

// Close waits for the Notify calls being batched to be written and
// releases the client's resources: the Redis connections if New or
// NewFromURL opened them.
func (c *Client) Close() error {
	if c.linger != nil {
		c.linger.Close()
	}
	if c.ownsRDB {
		return c.rdb.Close()
	}
	return nil
}

// Notify enqueues n and returns its notification id. A repeat with the same
// receiver, idempotency key, event type and payload returns the same id
// without a new delivery. The same key with another event type or payload
// returns that id with an error matching ErrIdempotencyConflict, while the
// first notification's task is still in Redis; see ErrIdempotencyConflict
// for afterwards.
func (c *Client) Notify(ctx context.Context, n Notification) (string, error) {
	d, err := c.admit(ctx, n)
	if err != nil {
		return "", err
	}
	d.EnqueuedAt = time.Now().UTC()
	if _, err := c.enqueue(ctx, d); err != nil {
		if errors.Is(err, ErrIdempotencyConflict) {
			return d.ID.String(), err
		}
		return "", err
	}
	return d.ID.String(), nil
}

// prepare validates n and builds the task for its first attempt. Notify,
// EnqueueTx and the outbox relay all go through it, so they accept exactly
// the same notifications and derive the same ids.
func (c *Client) prepare(n Notification) (*tasks.Deliver, error) {
	receiver, err := uuid.Parse(n.ReceiverID)
	if err != nil {
		return nil, &ValidationError{Field: "receiver_id", Message: "is not a UUID"}
	}
	if err := c.opts.rules.Validate(&ingest.Input{
		EventType: n.EventType, IdempotencyKey: n.IdempotencyKey, CallbackURL: n.CallbackURL, Payload: n.Payload,
	}); err != nil {
		return nil, err
	}
	return &tasks.Deliver{
		ID:             tasks.NotificationID(receiver, n.IdempotencyKey),
		ReceiverID:     receiver,
		EventType:      n.EventType,
		IdempotencyKey: n.IdempotencyKey,
		CallbackURL:    n.CallbackURL,
		Payload:        n.Payload,
		Attempt:        1,
	}, nil
}

// enqueue puts d on Asynq, sharing a task with concurrent calls unless
// WithLinger(0). It reports whether a new task was created: false means a
// task with the same id and content was already queued or running, which
// is success too (the notification is on its way); the same id with other
// content is a *ConflictError.
func (c *Client) enqueue(ctx context.Context, d *tasks.Deliver) (created bool, err error) {
	var r enqueue.Result
	if c.linger != nil {
		r, err = c.linger.Enqueue(ctx, d)
	} else {
		finish := tasks.TraceEnqueue(ctx, d)
		r = c.write(ctx, []*tasks.Deliver{d}, false)[0]
		err = r.Err
		finish(r.Status == enqueue.AlreadyQueued, err)
	}
	if err == nil && r.Err == nil && r.Status == 0 {
		err = ctx.Err()
	}
	return r.Status == enqueue.Queued, resultError(d, r, err)
}

// write queues ds (spans: one per member, in ctx) and, with replica acks on,
// waits for the replicas: a member whose write they did not confirm gets a
// *ReplicaAckError.
func (c *Client) write(ctx context.Context, ds []*tasks.Deliver, spans bool) []enqueue.Result {
	var ack *replicaAck
	if c.acks != nil {
		ack = new(replicaAck)
		ctx = context.WithValue(ctx, ackKey{}, ack)
	}
	var res []enqueue.Result
	if spans {
		res, _ = c.producer.EnqueueMany(ctx, ds)
	} else {
		res, _ = c.producer.Enqueue(ctx, ds)
	}
	if ack == nil {
		return res
	}
	wrote, found := false, false
	for _, r := range res {
		wrote = wrote || r.Status == enqueue.Queued
		found = found || r.Status == enqueue.AlreadyQueued
	}
	if found || !wrote {
		// A task found in Redis may be an earlier call's, not replicated yet.
		c.acks.confirmReplicated(ctx, ack)
	}
	for i := range res {
		if res[i].Err == nil && res[i].Status != enqueue.Conflict {
			res[i].Err = ack.check(ds[i].ID.String(), c.opts.replicaAck)
		}
	}
	return res
}

// resultError is the error Notify returns for d's enqueue result.
func resultError(d *tasks.Deliver, r enqueue.Result, err error) error {
	switch {
	case err != nil && errors.Is(err, ErrReplicaAck):
		return err
	case err != nil:
		return fmt.Errorf("notifier: enqueue %s: %w", d.ID, err)
	case r.Status == enqueue.Conflict:
		return &ConflictError{ID: d.ID.String(), QueuedHash: r.QueuedHash,
			RejectedHash: ingest.PayloadHash(d.Payload), TypeDiffers: r.TypeDiffers}
	}
	return nil
}

func (c *Client) checkReceiver(ctx context.Context, id uuid.UUID) error {
	if _, ok := c.active.Get(id); ok {
		return nil
	}
	state, err := registry.Lookup(ctx, c.rdb, id)
	switch {
	case errors.Is(err, registry.ErrNotLoaded):
		return ErrRegistryUnavailable
	case err != nil:
		return fmt.Errorf("notifier: %w", err)
	case state == registry.Unknown:
		return fmt.Errorf("%w: %s", ErrUnknownReceiver, id)
	case state == registry.Inactive:
		return fmt.Errorf("%w: %s", ErrReceiverInactive, id)
	}
	c.active.Put(id, struct{}{})
	return nil
}

// checkCallbackHost refuses an override outside the receiver's
// callback_hosts (workers refuse it again, from Postgres).
func (c *Client) checkCallbackHost(ctx context.Context, d *tasks.Deliver) error {
	if d.CallbackURL == "" {
		return nil
	}
	hosts, ok := c.hosts.Get(d.ReceiverID)
	if !ok {
		var err error
		hosts, err = registry.CallbackHosts(ctx, c.rdb, d.ReceiverID)
		switch {
		case errors.Is(err, registry.ErrNotLoaded):
			return ErrRegistryUnavailable
		case err != nil:
			return fmt.Errorf("notifier: %w", err)
		}
		c.hosts.Put(d.ReceiverID, hosts)
	}
	if err := callbackhosts.Allowed(hosts, d.CallbackURL); err != nil {
		return &hostError{ValidationError{Field: "callback_url", Message: "names a host outside the receiver's callback_hosts"}}
	}
	return nil
}

// hostError is the *ValidationError for a refused callback host; it also
// matches ErrCallbackHostNotAllowed.
type hostError struct{ ValidationError }

func (e *hostError) Unwrap() []error {
	return []error{&e.ValidationError, ErrCallbackHostNotAllowed}
}
