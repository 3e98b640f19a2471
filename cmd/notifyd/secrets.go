package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/notifyd/notifyd/internal/config"
	"github.com/notifyd/notifyd/internal/store"
)

// resealBatch is how many receivers one re-encryption query reads.
const resealBatch = 500

// safeToStart applies NOTIFYD_ENV: in production any unsafe setting stops
// the process before it connects to anything (each named on stderr); in
// development each is logged as a warning.
func safeToStart(cfg *config.Config, logger *slog.Logger, stderr io.Writer) bool {
	unsafe := cfg.Unsafe()
	if len(unsafe) == 0 {
		return true
	}
	if cfg.Env == config.EnvProduction {
		fmt.Fprintf(stderr, "notifyd: refusing to start with NOTIFYD_ENV=production:\n  - %s\n"+
			"fix these settings, or set NOTIFYD_ENV=development outside production\n", strings.Join(unsafe, "\n  - "))
		return false
	}
	for _, u := range unsafe {
		logger.Warn("unsafe setting allowed because NOTIFYD_ENV=development", "setting", u)
	}
	return true
}

// rotateSecretKey is `notifyd rotate-secret-key`: it seals every receiver's
// signing secrets with the first key of NOTIFYD_SECRET_KEYS, printing
// progress on stdout. Rows already sealed with that key are left alone, so a
// second run (or one interrupted and started again) writes nothing twice.
func rotateSecretKey(ctx context.Context, cfg *config.Config, stdout io.Writer, logger *slog.Logger) int {
	if cfg.SecretKeys.Len() == 0 {
		fmt.Fprintln(stdout, "notifyd rotate-secret-key: NOTIFYD_SECRET_KEYS is not set")
		return 2
	}
	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		logger.Error("rotate-secret-key failed", "err", err)
		return 1
	}
	defer st.Close()
	st.SetSecretKeys(cfg.SecretKeys)
	fmt.Fprintf(stdout, "sealing signing secrets with key %q\n", cfg.SecretKeys.Current())
	res, err := st.ReencryptSecrets(ctx, resealBatch, func(done, total int) {
		fmt.Fprintf(stdout, "%d/%d receivers\n", done, total)
	})
	if err != nil {
		logger.Error("rotate-secret-key failed", "err", err, "receivers_done", res.Receivers, "resealed", res.Resealed)
		return 1
	}
	fmt.Fprintf(stdout, "done: %d receivers, %d resealed with key %q\n", res.Receivers, res.Resealed, cfg.SecretKeys.Current())
	return 0
}

// sealPlaintextSecrets runs after the schema migrations: with
// NOTIFYD_SECRET_KEYS set, secrets stored in the clear (before the keys were
// configured) and under retired keys are sealed with the current key.
func sealPlaintextSecrets(ctx context.Context, cfg *config.Config, logger *slog.Logger) error {
	if cfg.SecretKeys.Len() == 0 {
		return nil
	}
	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	st.SetSecretKeys(cfg.SecretKeys)
	res, err := st.ReencryptSecrets(ctx, resealBatch, nil)
	if err != nil {
		return fmt.Errorf("seal signing secrets: %w", err)
	}
	logger.Info("signing secrets sealed", "key", cfg.SecretKeys.Current(), "receivers", res.Receivers, "resealed", res.Resealed)
	return nil
}
