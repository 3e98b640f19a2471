// Package config reads notifyd's settings from flags and NOTIFYD_*
// environment variables. A flag wins over its variable; the variable wins
// over the default. Every setting is listed in one place (define) so that the
// README's configuration table can be checked against it.
//
// Load must not connect to anything: reading the configuration has no side
// effects (Redis builds a client only when a caller asks for one).
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/notifyd/notifyd/internal/ingest"
	"github.com/notifyd/notifyd/internal/netguard"
	"github.com/notifyd/notifyd/internal/redisurl"
	"github.com/notifyd/notifyd/internal/retry"
	"github.com/notifyd/notifyd/internal/secretbox"
	"github.com/notifyd/notifyd/internal/taskauth"
	"github.com/notifyd/notifyd/internal/tasks"
	"github.com/redis/go-redis/v9"
)

// Config is every setting of the notifyd binary.
type Config struct {
	DatabaseURL    string
	RedisURL       string
	HTTPAddr       string
	AdminToken     string
	ProducerTokens []string
	Targets        netguard.Policy
	Retry          retry.Policy

	WorkerConcurrency   int
	ReceiverConcurrency int
	// QueueShards splits the delivery queues into that many shards
	// (tasks.Queues) so that a Redis Cluster's masters share them; 1:
	// unsharded.
	QueueShards     int
	BreakerFailures int
	BreakerCooldown time.Duration
	DeliveryTimeout time.Duration
	ShutdownTimeout time.Duration
	MaxPayload      int
	NoMigrate       bool

	// Outbox relay (`notifyd relay`): the producer's database and table.
	OutboxDatabaseURL string
	OutboxTable       string
	// RelayReplicaAck > 0: the relay marks a row sent only once that many
	// Redis replicas have the notification (notifier.WithReplicaAck).
	RelayReplicaAck int

	// Cron schedules (robfig/cron syntax, with optional seconds field).
	RedriveSchedule   string
	RetentionSchedule string
	SummarySchedule   string
	GaugesSchedule    string
	Retention         time.Duration

	LogLevel  slog.Level
	LogFormat string

	// TaskKeys seals and verifies every task in Redis (NOTIFYD_TASK_KEY);
	// nil when unset (tasks unsigned, development).
	TaskKeys *taskauth.Keyring
	// Env is "production" (the default: Unsafe settings refuse to start) or
	// "development" (they are allowed with a warning).
	Env string
	// SecretKeys seal receivers' signing secrets in Postgres
	// (NOTIFYD_SECRET_KEYS; empty ring: stored in the clear).
	SecretKeys *secretbox.Keyring

	// devLoopback: NOTIFYD_ALLOW_PRIVATE_TARGETS was unset in development,
	// so loopback callbacks are allowed (Unsafe warns of it).
	devLoopback bool

	// OpsAddr serves /metrics and readiness detail, apart from the API port.
	OpsAddr string
	// Token buckets per principal (admin, one per producer, one per
	// receiver) and per client IP for failed authentication.
	RateLimitAdmin, RateLimitProducer, RateLimitReceiver, RateLimitAuthFailures RateLimit
	// TrustedProxies may set X-Forwarded-For; anyone else's is ignored.
	TrustedProxies   []netip.Prefix
	RequestTimeout   time.Duration
	StatementTimeout time.Duration
	ListMaxBytes     int

	Lifecycle Lifecycle
}

// The values of NOTIFYD_ENV.
const (
	EnvProduction  = "production"
	EnvDevelopment = "development"
)

// minTokenLen is the shortest static bearer token production accepts: 32
// characters of `openssl rand -hex 16` or longer cannot be guessed online.
const minTokenLen = 32

// Load parses args (without the program and subcommand names) with env as
// the source of defaults (os.Getenv in production).
func Load(name string, args []string, env func(string) string, output io.Writer) (*Config, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(output)
	var c Config
	var raw rawSettings
	define(fs, env, &c, &raw)
	return raw.load(fs, args, &c)
}

// load parses args with fs, whose flags write into raw and c, then checks
// every setting into c.
func (raw *rawSettings) load(fs *flag.FlagSet, args []string, c *Config) (*Config, error) {
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := raw.parse(c); err != nil {
		return nil, err
	}
	return c, nil
}

// parse checks every setting given as a string into c, reporting each bad
// one under its variable's name.
func (raw *rawSettings) parse(c *Config) error {
	var errs settingErrors
	raw.parseAccess(c, &errs)
	raw.parseRetry(c, &errs)
	raw.parseDelivery(c, &errs)
	raw.parseOperation(c, &errs)
	raw.parseSecurity(c, &errs)
	raw.limits.parse(c, &errs)
	raw.lifecycle.parse(c, &errs)
	return errors.Join(errs...)
}

// rawSettings holds, as given, the settings that need parsing or checking
// after the flags are read; the plain strings go straight into Config.
type rawSettings struct {
	producers, targets                       string
	maxAttempts, base, factor, maxInterval   string
	concurrency, receiverConcurrency         string
	breakerFailures, breakerCooldown         string
	timeout, shutdown, maxPayload, noMigrate string
	retention, relayAck, logLevel            string
	queueShards                              string
	taskKey, secretKeys                      string
	limits                                   rawLimits
	lifecycle                                rawLifecycle
}

// define declares every setting as a flag whose default is its NOTIFYD_*
// variable when set, else the built-in default.
func define(fs *flag.FlagSet, env func(string) string, c *Config, raw *rawSettings) {
	str := func(p *string, flagName, envName, def, usage string) {
		if v := env(envName); v != "" {
			def = v
		}
		fs.StringVar(p, flagName, def, usage+" ("+envName+")")
	}
	str(&c.DatabaseURL, "database-url", "NOTIFYD_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/notifyd?sslmode=disable", "PostgreSQL URL")
	str(&c.RedisURL, "redis-url", "NOTIFYD_REDIS_URL", "redis://127.0.0.1:6379/0", "Redis URL")
	str(&c.HTTPAddr, "http-addr", "NOTIFYD_HTTP_ADDR", ":8080", "API listen address")
	str(&c.AdminToken, "admin-token", "NOTIFYD_ADMIN_TOKEN", "", "bearer token for the admin API")
	str(&raw.producers, "producer-tokens", "NOTIFYD_PRODUCER_TOKENS", "", "comma-separated bearer tokens allowed to ingest")
	str(&raw.targets, "allow-private-targets", "NOTIFYD_ALLOW_PRIVATE_TARGETS", "", `"true", "false" or CIDR list of private callback targets to allow (unset: none; loopback in development)`)
	def := retry.Default()
	str(&raw.maxAttempts, "retry-max-attempts", "NOTIFYD_RETRY_MAX_ATTEMPTS", strconv.Itoa(def.MaxAttempts), "default attempts per notification")
	str(&raw.base, "retry-base", "NOTIFYD_RETRY_BASE", def.Base.String(), "default first retry delay")
	str(&raw.factor, "retry-factor", "NOTIFYD_RETRY_FACTOR", strconv.FormatFloat(def.Factor, 'g', -1, 64), "default delay growth factor")
	str(&raw.maxInterval, "retry-max-interval", "NOTIFYD_RETRY_MAX_INTERVAL", def.MaxInterval.String(), "default longest delay between attempts")
	str(&raw.concurrency, "worker-concurrency", "NOTIFYD_WORKER_CONCURRENCY", "100", "deliveries in flight per worker process")
	str(&raw.queueShards, "queue-shards", "NOTIFYD_QUEUE_SHARDS", "1", "delivery queue shards, a receiver's tasks always on one (spread over Redis Cluster masters; the same on every process)")
	str(&raw.receiverConcurrency, "receiver-concurrency", "NOTIFYD_RECEIVER_CONCURRENCY", "20", "deliveries in flight to one receiver across all workers (-1: no cap)")
	str(&raw.breakerFailures, "breaker-failures", "NOTIFYD_BREAKER_FAILURES", "10", "consecutive failed attempts that open a receiver's circuit (-1: no breaker)")
	str(&raw.breakerCooldown, "breaker-cooldown", "NOTIFYD_BREAKER_COOLDOWN", "30s", "first open period of a receiver's circuit (doubles while it stays down, up to 10m)")
	str(&raw.timeout, "delivery-timeout", "NOTIFYD_DELIVERY_TIMEOUT", "10s", "default timeout of one delivery attempt (receivers may set up to 30s)")
	str(&raw.shutdown, "shutdown-timeout", "NOTIFYD_SHUTDOWN_TIMEOUT", "30s", "time in-flight deliveries get to finish on SIGTERM")
	str(&raw.maxPayload, "max-payload-bytes", "NOTIFYD_MAX_PAYLOAD_BYTES", strconv.Itoa(ingest.DefaultMaxPayload), "largest notification payload")
	str(&raw.noMigrate, "no-migrate", "NOTIFYD_NO_MIGRATE", "false", "notifyd all does not apply migrations on start")
	str(&c.RedriveSchedule, "redrive-schedule", "NOTIFYD_REDRIVE_SCHEDULE", "@every 1m", "cron schedule of the re-drive job")
	str(&c.RetentionSchedule, "retention-schedule", "NOTIFYD_RETENTION_SCHEDULE", "@every 1h", "cron schedule of the retention job")
	str(&c.SummarySchedule, "summary-schedule", "NOTIFYD_SUMMARY_SCHEDULE", "0 0 * * *", "cron schedule of the daily receiver summary")
	str(&c.GaugesSchedule, "gauges-schedule", "NOTIFYD_GAUGES_SCHEDULE", "@every 30s", "cron schedule of the database gauges refresh (notifications by status, receivers, oldest due)")
	str(&raw.retention, "retention", "NOTIFYD_RETENTION", "720h", "how long terminal notifications and attempts are kept")
	str(&raw.logLevel, "log-level", "NOTIFYD_LOG_LEVEL", "info", "debug, info, warn or error")
	str(&c.LogFormat, "log-format", "NOTIFYD_LOG_FORMAT", "json", "json or text")
	str(&c.OutboxDatabaseURL, "outbox-database-url", "NOTIFYD_OUTBOX_DATABASE_URL", "", "relay: PostgreSQL URL of the producer database holding the outbox")
	str(&c.OutboxTable, "outbox-table", "NOTIFYD_OUTBOX_TABLE", "notifyd_outbox", "relay: name of the outbox table")
	str(&raw.relayAck, "relay-replica-ack", "NOTIFYD_RELAY_REPLICA_ACK", "0", "relay: Redis replicas that must confirm each notification before its outbox row is marked sent (Redis WAIT, 2s timeout)")
	str(&raw.taskKey, "task-key", "NOTIFYD_TASK_KEY", "", "id:base64-secret[,id:base64-secret…] keys that sign (first) and verify (all) tasks in Redis")
	str(&c.Env, "env", "NOTIFYD_ENV", EnvProduction, `"production" refuses to start with unsafe settings; "development" allows them with a warning`)
	str(&raw.secretKeys, "secret-keys", "NOTIFYD_SECRET_KEYS", "", "keys sealing signing secrets at rest: id:base64(32 bytes),... (the first seals, all open)")
	raw.limits.define(str, c)
	raw.lifecycle.define(str, c)
}

// settingErrors collects every bad setting so one run reports them all,
// each under the name of its variable.
type settingErrors []error

func (e *settingErrors) check(setting string, err error) {
	if err != nil {
		*e = append(*e, fmt.Errorf("%s: %w", setting, err))
	}
}

// parseAccess reads who may ingest and which private targets are allowed.
func (raw *rawSettings) parseAccess(c *Config, errs *settingErrors) {
	for _, t := range strings.Split(raw.producers, ",") {
		if t = strings.TrimSpace(t); t != "" {
			c.ProducerTokens = append(c.ProducerTokens, t)
		}
	}
	var err error
	c.Targets, err = netguard.ParsePolicy(raw.targets)
	errs.check("NOTIFYD_ALLOW_PRIVATE_TARGETS", err)
	if strings.TrimSpace(raw.targets) == "" && c.Env == EnvDevelopment {
		// A first receiver usually runs on the developer's own machine:
		// development reaches loopback unless told otherwise, and Unsafe
		// lists it so that the start logs a warning.
		c.Targets.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
		c.devLoopback = true
	}
	c.Targets.Hint = netguard.ServerHint
}

// parseRetry reads the default retry policy over retry.Default, whose
// jitter has no setting of its own.
func (raw *rawSettings) parseRetry(c *Config, errs *settingErrors) {
	var err error
	c.Retry = retry.Default()
	c.Retry.MaxAttempts, err = strconv.Atoi(raw.maxAttempts)
	errs.check("NOTIFYD_RETRY_MAX_ATTEMPTS", err)
	c.Retry.Base, err = time.ParseDuration(raw.base)
	errs.check("NOTIFYD_RETRY_BASE", err)
	c.Retry.Factor, err = strconv.ParseFloat(raw.factor, 64)
	errs.check("NOTIFYD_RETRY_FACTOR", err)
	c.Retry.MaxInterval, err = time.ParseDuration(raw.maxInterval)
	errs.check("NOTIFYD_RETRY_MAX_INTERVAL", err)
	if err == nil && c.Retry.MaxAttempts < 1 {
		errs.check("NOTIFYD_RETRY_MAX_ATTEMPTS", errors.New("must be at least 1"))
	}
	errs.check("retry policy", c.Retry.Validate())
}

// parseDelivery reads the worker's concurrency, breaker and time limits.
func (raw *rawSettings) parseDelivery(c *Config, errs *settingErrors) {
	var err error
	c.WorkerConcurrency, err = strconv.Atoi(raw.concurrency)
	errs.check("NOTIFYD_WORKER_CONCURRENCY", err)
	c.QueueShards, err = strconv.Atoi(raw.queueShards)
	errs.check("NOTIFYD_QUEUE_SHARDS", err)
	if err == nil && (c.QueueShards < 1 || c.QueueShards > tasks.MaxQueueShards) {
		errs.check("NOTIFYD_QUEUE_SHARDS", fmt.Errorf("must be between 1 and %d", tasks.MaxQueueShards))
	}
	c.ReceiverConcurrency, err = strconv.Atoi(raw.receiverConcurrency)
	errs.check("NOTIFYD_RECEIVER_CONCURRENCY", err)
	c.BreakerFailures, err = strconv.Atoi(raw.breakerFailures)
	errs.check("NOTIFYD_BREAKER_FAILURES", err)
	c.BreakerCooldown, err = time.ParseDuration(raw.breakerCooldown)
	errs.check("NOTIFYD_BREAKER_COOLDOWN", err)
	c.DeliveryTimeout, err = time.ParseDuration(raw.timeout)
	errs.check("NOTIFYD_DELIVERY_TIMEOUT", err)
	if err == nil && (c.DeliveryTimeout < 100*time.Millisecond || c.DeliveryTimeout > 30*time.Second) {
		errs.check("NOTIFYD_DELIVERY_TIMEOUT", errors.New("must be between 100ms and 30s"))
	}
	c.ShutdownTimeout, err = time.ParseDuration(raw.shutdown)
	errs.check("NOTIFYD_SHUTDOWN_TIMEOUT", err)
	c.MaxPayload, err = strconv.Atoi(raw.maxPayload)
	errs.check("NOTIFYD_MAX_PAYLOAD_BYTES", err)
}

// parseOperation reads the remaining settings: migrations, relay,
// retention and logging.
func (raw *rawSettings) parseOperation(c *Config, errs *settingErrors) {
	var err error
	c.NoMigrate, err = strconv.ParseBool(raw.noMigrate)
	errs.check("NOTIFYD_NO_MIGRATE", err)
	c.RelayReplicaAck, err = strconv.Atoi(raw.relayAck)
	errs.check("NOTIFYD_RELAY_REPLICA_ACK", err)
	c.Retention, err = time.ParseDuration(raw.retention)
	errs.check("NOTIFYD_RETENTION", err)
	errs.check("NOTIFYD_LOG_LEVEL", c.LogLevel.UnmarshalText([]byte(raw.logLevel)))
	if c.LogFormat != "json" && c.LogFormat != "text" {
		errs.check("NOTIFYD_LOG_FORMAT", errors.New(`must be "json" or "text"`))
	}
}

// Logger builds the process logger from the settings.
func (c *Config) Logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// FromEnv is Load with the process environment.
func FromEnv(name string, args []string) (*Config, error) {
	return Load(name, args, os.Getenv, os.Stderr)
}

// Redis turns a Redis URL (NOTIFYD_REDIS_URL: one server, TLS, ACL user,
// Sentinel or Cluster; see internal/redisurl) into the go-redis client every notifyd
// component uses for its own keys and shares with Asynq
// (asynq.NewClientFromRedisClient), and the equivalent Asynq RedisConnOpt
// (RedisFailoverClientOpt for Sentinel, RedisClusterClientOpt for a
// cluster) for code that lets Asynq connect by
// itself. The caller closes the client.
func Redis(url string) (redis.UniversalClient, asynq.RedisConnOpt, error) {
	c, err := redisurl.Parse(url)
	if err != nil {
		return nil, nil, err
	}
	return c.Client(), c.AsynqOpt(), nil
}

// RedisOptions parses a one-server Redis URL (redis://, rediss:// or
// unix://); a Sentinel or Cluster URL is an error (redisurl.ErrNotSingleNode). Tools
// that need *redis.Options (the benchmark) use it; notifyd itself uses Redis.
func RedisOptions(url string) (*redis.Options, error) {
	c, err := redisurl.Parse(url)
	if err != nil {
		return nil, err
	}
	return c.SingleNode()
}

// parseSecurity reads the mode and the keys that protect what notifyd
// trusts: the tasks in Redis and the signing secrets in Postgres.
func (raw *rawSettings) parseSecurity(c *Config, errs *settingErrors) {
	var err error
	c.TaskKeys, err = taskauth.Parse(raw.taskKey)
	errs.check("NOTIFYD_TASK_KEY", err)
	if c.Env != EnvProduction && c.Env != EnvDevelopment {
		errs.check("NOTIFYD_ENV", fmt.Errorf("must be %q or %q", EnvProduction, EnvDevelopment))
	}
	c.SecretKeys, err = secretbox.ParseKeys(raw.secretKeys)
	errs.check("NOTIFYD_SECRET_KEYS", err)
}
