package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/config"
	"github.com/notifyd/notifyd/internal/metrics"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/notifier"
)

// relayAckTimeout bounds one WAIT of the relay (NOTIFYD_RELAY_REPLICA_ACK);
// a row that times out stays unsent and is tried again.
const relayAckTimeout = 2 * time.Second

// runRelay is `notifyd relay`: the outbox relay as a sidecar, for producers
// that write their outbox with EnqueueTx (or plain SQL) and prefer not to run
// notifier.Relay in their own process. It needs the producer's database
// (NOTIFYD_OUTBOX_DATABASE_URL), notifyd's Redis, and notifyd's database
// (NOTIFYD_DATABASE_URL), read only: an outbox row is done once its
// notification is recorded there, not when it is queued in Redis.
func runRelay(ctx context.Context, cfg *config.Config, logger *slog.Logger) error {
	if cfg.OutboxDatabaseURL == "" {
		return errors.New("relay: NOTIFYD_OUTBOX_DATABASE_URL (-outbox-database-url) is required")
	}
	pcfg, err := pgxpool.ParseConfig(cfg.OutboxDatabaseURL)
	if err != nil {
		return fmt.Errorf("NOTIFYD_OUTBOX_DATABASE_URL: %w", err)
	}
	if pcfg.ConnConfig.RuntimeParams["application_name"] == "" {
		pcfg.ConnConfig.RuntimeParams["application_name"] = "notifyd-relay"
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return fmt.Errorf("relay: connect outbox database: %w", err)
	}
	defer pool.Close()
	notifyd, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("relay: notifyd database (NOTIFYD_DATABASE_URL): %w", err)
	}
	defer notifyd.Close()
	rdb, _, err := config.Redis(cfg.RedisURL)
	if err != nil {
		return fmt.Errorf("NOTIFYD_REDIS_URL: %w", err)
	}
	defer rdb.Close()
	if err := checkRedisMode(ctx, rdb); err != nil {
		return err
	}
	client := notifier.NewFromRedisClient(rdb,
		notifier.WithReplicaAck(cfg.RelayReplicaAck, relayAckTimeout),
		notifier.WithOutboxTable(cfg.OutboxTable),
		notifier.WithMaxPayloadSize(cfg.MaxPayload),
		notifier.WithTaskKey(notifier.TaskKeyFromKeyring(cfg.TaskKeys)),
		// The relay re-validates rows; with any private target allowed it
		// lets private callback URLs through rather than kill rows the
		// workers' exact policy (enforced at connect time) would accept.
		notifier.WithAllowPrivateTargets(cfg.Targets.AllowPrivate || len(cfg.Targets.Allow) > 0),
	)
	defer client.Close()
	relay := notifier.NewRelay(pool, client, notifier.WithRelayLogger(logger),
		notifier.WithRelayConfirmer(notifier.DatabaseConfirmer(notifyd.Pool())))
	return runAll(ctx, []func(context.Context) error{
		relay.Run,
		func(ctx context.Context) error {
			// Readiness is the relay's two dependencies: the outbox
			// database (wrapped as a store only to be pinged) and Redis.
			return serveOps(ctx, cfg.OpsAddr, store.New(pool), rdb, logger,
				metrics.NewDBPoolCollector(map[string]*pgxpool.Pool{"outbox": pool, "notifyd": notifyd.Pool()}),
				metrics.NewRedisPoolCollector(rdb))
		},
	})
}

// outboxSchema is `notifyd outbox-schema`: it prints the SQL that creates the
// outbox table, for the producer's own migration tool.
func outboxSchema(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("notifyd outbox-schema", flag.ContinueOnError)
	fs.SetOutput(stderr)
	table := fs.String("table", notifier.DefaultOutboxTable, "name of the outbox table")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	sql, err := notifier.OutboxSchema(*table)
	if err != nil {
		fmt.Fprintf(stderr, "notifyd: %v\n", err)
		return 2
	}
	fmt.Fprint(stdout, sql)
	return 0
}
