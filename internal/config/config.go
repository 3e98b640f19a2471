// Package config reads notifyd's settings from flags and NOTIFYD_*
// environment variables. A flag wins over its variable; the variable wins
// over the default. Every setting is listed in one place (Load) so that the
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
	BreakerFailures     int
	BreakerCooldown     time.Duration
	DeliveryTimeout     time.Duration
	ShutdownTimeout     time.Duration
	MaxPayload          int
	NoMigrate           bool

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
	Retention         time.Duration

	LogLevel  slog.Level
	LogFormat string

	// --- Part C (limits): ops listener, rate limits, deadlines, bounds.
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
	// --- end of part C.
}

// Load parses args (without the program and subcommand names) with env as
// the source of defaults (os.Getenv in production).
func Load(name string, args []string, env func(string) string, output io.Writer) (*Config, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(output)
	var c Config
	var producers, targets, maxAttemptsS, base, factor, maxInterval, logLevel string
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
	str(&producers, "producer-tokens", "NOTIFYD_PRODUCER_TOKENS", "", "comma-separated bearer tokens allowed to ingest")
	str(&targets, "allow-private-targets", "NOTIFYD_ALLOW_PRIVATE_TARGETS", "false", `"true" or CIDR list of private callback targets to allow`)
	def := retry.Default()
	str(&maxAttemptsS, "retry-max-attempts", "NOTIFYD_RETRY_MAX_ATTEMPTS", strconv.Itoa(def.MaxAttempts), "default attempts per notification")
	str(&base, "retry-base", "NOTIFYD_RETRY_BASE", def.Base.String(), "default first retry delay")
	str(&factor, "retry-factor", "NOTIFYD_RETRY_FACTOR", strconv.FormatFloat(def.Factor, 'g', -1, 64), "default delay growth factor")
	str(&maxInterval, "retry-max-interval", "NOTIFYD_RETRY_MAX_INTERVAL", def.MaxInterval.String(), "default longest delay between attempts")
	var concurrency, timeout, shutdown, maxPayload, noMigrate, retention string
	var receiverConcurrency, breakerFailures, breakerCooldown string
	str(&concurrency, "worker-concurrency", "NOTIFYD_WORKER_CONCURRENCY", "100", "deliveries in flight per worker process")
	str(&receiverConcurrency, "receiver-concurrency", "NOTIFYD_RECEIVER_CONCURRENCY", "20", "deliveries in flight to one receiver across all workers (-1: no cap)")
	str(&breakerFailures, "breaker-failures", "NOTIFYD_BREAKER_FAILURES", "10", "consecutive failed attempts that open a receiver's circuit (-1: no breaker)")
	str(&breakerCooldown, "breaker-cooldown", "NOTIFYD_BREAKER_COOLDOWN", "30s", "first open period of a receiver's circuit (doubles while it stays down, up to 10m)")
	str(&timeout, "delivery-timeout", "NOTIFYD_DELIVERY_TIMEOUT", "10s", "default timeout of one delivery attempt (receivers may set up to 30s)")
	str(&shutdown, "shutdown-timeout", "NOTIFYD_SHUTDOWN_TIMEOUT", "30s", "time in-flight deliveries get to finish on SIGTERM")
	str(&maxPayload, "max-payload-bytes", "NOTIFYD_MAX_PAYLOAD_BYTES", strconv.Itoa(ingest.DefaultMaxPayload), "largest notification payload")
	str(&noMigrate, "no-migrate", "NOTIFYD_NO_MIGRATE", "false", "`all` does not apply migrations on start")
	str(&c.RedriveSchedule, "redrive-schedule", "NOTIFYD_REDRIVE_SCHEDULE", "@every 1m", "cron schedule of the re-drive job")
	str(&c.RetentionSchedule, "retention-schedule", "NOTIFYD_RETENTION_SCHEDULE", "@every 1h", "cron schedule of the retention job")
	str(&c.SummarySchedule, "summary-schedule", "NOTIFYD_SUMMARY_SCHEDULE", "0 0 * * *", "cron schedule of the daily receiver summary")
	str(&retention, "retention", "NOTIFYD_RETENTION", "720h", "how long terminal notifications and attempts are kept")
	str(&logLevel, "log-level", "NOTIFYD_LOG_LEVEL", "info", "debug, info, warn or error")
	str(&c.LogFormat, "log-format", "NOTIFYD_LOG_FORMAT", "json", "json or text")
	str(&c.OutboxDatabaseURL, "outbox-database-url", "NOTIFYD_OUTBOX_DATABASE_URL", "", "relay: PostgreSQL URL of the producer database holding the outbox")
	str(&c.OutboxTable, "outbox-table", "NOTIFYD_OUTBOX_TABLE", "notifyd_outbox", "relay: name of the outbox table")
	var relayAck string
	str(&relayAck, "relay-replica-ack", "NOTIFYD_RELAY_REPLICA_ACK", "0", "relay: Redis replicas that must confirm each notification before its outbox row is marked sent (Redis WAIT, 2s timeout)")
	// --- Part C (limits).
	var rlAdmin, rlProducer, rlReceiver, rlAuth, proxies, reqTimeout, stmtTimeout, listBytes string
	str(&c.OpsAddr, "ops-addr", "NOTIFYD_OPS_ADDR", "127.0.0.1:9090", "ops listen address: /healthz, /readyz with detail, /metrics")
	str(&rlAdmin, "rate-limit-admin", "NOTIFYD_RATE_LIMIT_ADMIN", "10000/20000", `requests per second/burst for the admin token per API process ("off": none)`)
	str(&rlProducer, "rate-limit-producer", "NOTIFYD_RATE_LIMIT_PRODUCER", "10000/20000", "requests per second/burst for each producer per API process")
	str(&rlReceiver, "rate-limit-receiver", "NOTIFYD_RATE_LIMIT_RECEIVER", "10000/20000", "requests per second/burst for each receiver (all its keys) per API process")
	str(&rlAuth, "rate-limit-auth-failures", "NOTIFYD_RATE_LIMIT_AUTH_FAILURES", "10/100", "failed authentications per second/burst per client IP per API process")
	str(&proxies, "trusted-proxies", "NOTIFYD_TRUSTED_PROXIES", "", "comma-separated CIDRs of proxies whose X-Forwarded-For names the client IP")
	str(&reqTimeout, "request-timeout", "NOTIFYD_REQUEST_TIMEOUT", "30s", "deadline of one API request")
	str(&stmtTimeout, "statement-timeout", "NOTIFYD_STATEMENT_TIMEOUT", "60s", "Postgres statement_timeout sent at connect (0: not sent, e.g. behind a transaction-mode PgBouncer)")
	str(&listBytes, "list-max-bytes", "NOTIFYD_LIST_MAX_BYTES", strconv.Itoa(4<<20), "payload bytes in one listing page before it ends with a cursor")
	// --- end of part C.
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	var errs []error
	check := func(setting string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", setting, err))
		}
	}
	for _, t := range strings.Split(producers, ",") {
		if t = strings.TrimSpace(t); t != "" {
			c.ProducerTokens = append(c.ProducerTokens, t)
		}
	}
	var err error
	c.Targets, err = netguard.ParsePolicy(targets)
	check("NOTIFYD_ALLOW_PRIVATE_TARGETS", err)
	c.Retry = def
	c.Retry.MaxAttempts, err = strconv.Atoi(maxAttemptsS)
	check("NOTIFYD_RETRY_MAX_ATTEMPTS", err)
	c.Retry.Base, err = time.ParseDuration(base)
	check("NOTIFYD_RETRY_BASE", err)
	c.Retry.Factor, err = strconv.ParseFloat(factor, 64)
	check("NOTIFYD_RETRY_FACTOR", err)
	c.Retry.MaxInterval, err = time.ParseDuration(maxInterval)
	check("NOTIFYD_RETRY_MAX_INTERVAL", err)
	if err == nil && c.Retry.MaxAttempts < 1 {
		check("NOTIFYD_RETRY_MAX_ATTEMPTS", errors.New("must be at least 1"))
	}
	check("retry policy", c.Retry.Validate())
	c.WorkerConcurrency, err = strconv.Atoi(concurrency)
	check("NOTIFYD_WORKER_CONCURRENCY", err)
	c.ReceiverConcurrency, err = strconv.Atoi(receiverConcurrency)
	check("NOTIFYD_RECEIVER_CONCURRENCY", err)
	c.BreakerFailures, err = strconv.Atoi(breakerFailures)
	check("NOTIFYD_BREAKER_FAILURES", err)
	c.BreakerCooldown, err = time.ParseDuration(breakerCooldown)
	check("NOTIFYD_BREAKER_COOLDOWN", err)
	c.DeliveryTimeout, err = time.ParseDuration(timeout)
	check("NOTIFYD_DELIVERY_TIMEOUT", err)
	if err == nil && (c.DeliveryTimeout < 100*time.Millisecond || c.DeliveryTimeout > 30*time.Second) {
		check("NOTIFYD_DELIVERY_TIMEOUT", errors.New("must be between 100ms and 30s"))
	}
	c.ShutdownTimeout, err = time.ParseDuration(shutdown)
	check("NOTIFYD_SHUTDOWN_TIMEOUT", err)
	c.MaxPayload, err = strconv.Atoi(maxPayload)
	check("NOTIFYD_MAX_PAYLOAD_BYTES", err)
	c.NoMigrate, err = strconv.ParseBool(noMigrate)
	check("NOTIFYD_NO_MIGRATE", err)
	c.RelayReplicaAck, err = strconv.Atoi(relayAck)
	check("NOTIFYD_RELAY_REPLICA_ACK", err)
	c.Retention, err = time.ParseDuration(retention)
	check("NOTIFYD_RETENTION", err)
	check("NOTIFYD_LOG_LEVEL", c.LogLevel.UnmarshalText([]byte(logLevel)))
	if c.LogFormat != "json" && c.LogFormat != "text" {
		check("NOTIFYD_LOG_FORMAT", errors.New(`must be "json" or "text"`))
	}
	// --- Part C (limits).
	c.RateLimitAdmin, err = ParseRateLimit(rlAdmin)
	check("NOTIFYD_RATE_LIMIT_ADMIN", err)
	c.RateLimitProducer, err = ParseRateLimit(rlProducer)
	check("NOTIFYD_RATE_LIMIT_PRODUCER", err)
	c.RateLimitReceiver, err = ParseRateLimit(rlReceiver)
	check("NOTIFYD_RATE_LIMIT_RECEIVER", err)
	c.RateLimitAuthFailures, err = ParseRateLimit(rlAuth)
	check("NOTIFYD_RATE_LIMIT_AUTH_FAILURES", err)
	c.TrustedProxies, err = ParsePrefixes(proxies)
	check("NOTIFYD_TRUSTED_PROXIES", err)
	c.RequestTimeout, err = time.ParseDuration(reqTimeout)
	if err == nil && c.RequestTimeout < time.Second {
		err = errors.New("must be at least 1s")
	}
	check("NOTIFYD_REQUEST_TIMEOUT", err)
	c.StatementTimeout, err = time.ParseDuration(stmtTimeout)
	if err == nil && c.StatementTimeout != 0 && c.StatementTimeout < time.Second {
		err = errors.New("must be 0 or at least 1s")
	}
	check("NOTIFYD_STATEMENT_TIMEOUT", err)
	c.ListMaxBytes, err = strconv.Atoi(listBytes)
	if err == nil && c.ListMaxBytes < 1<<10 {
		err = errors.New("must be at least 1024")
	}
	check("NOTIFYD_LIST_MAX_BYTES", err)
	// --- end of part C.
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &c, nil
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

// Redis turns a Redis URL (NOTIFYD_REDIS_URL: one server, TLS, ACL user or
// Sentinel; see internal/redisurl) into the go-redis client every notifyd
// component uses for its own keys and shares with Asynq
// (asynq.NewClientFromRedisClient), and the equivalent Asynq RedisConnOpt
// (RedisFailoverClientOpt for Sentinel) for code that lets Asynq connect by
// itself. The caller closes the client.
func Redis(url string) (*redis.Client, asynq.RedisConnOpt, error) {
	c, err := redisurl.Parse(url)
	if err != nil {
		return nil, nil, err
	}
	return c.Client(), c.AsynqOpt(), nil
}

// RedisOptions parses a one-server Redis URL (redis://, rediss:// or
// unix://); a Sentinel URL is an error (redisurl.ErrNotSingleNode). Tools
// that need *redis.Options (the benchmark) use it; notifyd itself uses Redis.
func RedisOptions(url string) (*redis.Options, error) {
	c, err := redisurl.Parse(url)
	if err != nil {
		return nil, err
	}
	return c.SingleNode()
}
