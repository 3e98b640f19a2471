package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/config"
	"github.com/notifyd/notifyd/internal/signing"
	"github.com/notifyd/notifyd/internal/store"
)

// ensureOperator points the operator receiver, which gets every receiver's
// operational events, at NOTIFYD_OPERATOR_CALLBACK_URL (creating it the
// first time), or deactivates it when the setting is empty. Its signing
// secret is never logged: `notifyd operator-secret` prints it.
func ensureOperator(ctx context.Context, st *store.Store, cfg *config.Config, logger *slog.Logger) error {
	secret, err := signing.NewSecret()
	if err != nil {
		return err
	}
	fresh := &store.Receiver{ID: uuid.New(), Name: "notifyd operator", SigningSecret: secret}
	r, created, err := st.SetOperatorReceiver(ctx, cfg.Lifecycle.OperatorCallbackURL, fresh)
	switch {
	case err != nil:
		return err
	case r == nil:
		logger.Info("no NOTIFYD_OPERATOR_CALLBACK_URL: operational events go only to receivers' own status_callback_url")
	case created:
		logger.Info("operator receiver created: `notifyd operator-secret` prints the secret its events are signed with",
			"receiver_id", r.ID)
	default:
		logger.Info("operational events go to the operator receiver", "receiver_id", r.ID)
	}
	return nil
}

// operatorSecret is `notifyd operator-secret`: it prints the operator
// receiver's signing secret (whsec_…) on stdout, and its id on stderr.
func operatorSecret(ctx context.Context, cfg *config.Config, stdout, stderr io.Writer, logger *slog.Logger) int {
	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		logger.Error("operator-secret failed", "err", err)
		return 1
	}
	defer st.Close()
	st.SetSecretKeys(cfg.SecretKeys)
	r, err := st.OperatorReceiver(ctx)
	if errors.Is(err, store.ErrNotFound) {
		fmt.Fprintln(stderr, "notifyd operator-secret: no operator receiver yet: set NOTIFYD_OPERATOR_CALLBACK_URL and start the scheduler")
		return 1
	}
	if err != nil {
		logger.Error("operator-secret failed", "err", err)
		return 1
	}
	fmt.Fprintf(stderr, "operator receiver %s, events to %s\n", r.ID, r.CallbackURL)
	fmt.Fprintln(stdout, r.SigningSecret)
	return 0
}
