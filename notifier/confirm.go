package notifier

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/store"
)

// Confirmer tells the outbox relay which notifications notifyd has on record
// in its own Postgres. Until it does, a notification exists only in Redis
// (the worker records it at its first attempt), and a Redis that restarts
// empty loses it; so the relay keeps each outbox row, and queues it again
// after a grace period, until the Confirmer reports its notification
// recorded. From then on notifyd's re-drive job covers the loss of Redis.
//
// Why confirm rather than hand rows to notifyd's database directly: the
// relay keeps queueing straight into Redis as Notify does (one round trip
// per row, no extra write in notifyd's Postgres on the hot path), and the
// confirmation is one batched read per round, off the delivery path.
type Confirmer interface {
	// Recorded returns the subset of ids notifyd has on record. An error
	// means it cannot tell now; the relay asks again later.
	Recorded(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]bool, error)
}

// DatabaseConfirmer asks notifyd's Postgres, through pool (a connection to
// notifyd's database, not the producer's; read access to its notifications
// table is enough). `notifyd relay` uses it; an in-process relay can too if
// the producer may reach notifyd's database, else it uses APIConfirmer.
func DatabaseConfirmer(pool *pgxpool.Pool) Confirmer {
	return ConfirmerFunc(store.New(pool).RecordedNotifications)
}

// ConfirmerFunc adapts a function to a Confirmer.
type ConfirmerFunc func(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]bool, error)

// Recorded calls f.
func (f ConfirmerFunc) Recorded(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]bool, error) {
	return f(ctx, ids)
}

// apiBatch is the most ids one request to notifyd's API carries (the
// server's limit).
const apiBatch = 1000

// APIConfirmer asks notifyd's HTTP API (POST /v1/notifications/recorded)
// at baseURL (e.g. "https://notifyd.internal") with a producer token: for a
// relay in a producer's process that may not reach notifyd's database. hc
// nil means a client with a 10 s timeout.
func APIConfirmer(baseURL, token string, hc *http.Client) Confirmer {
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	a := &apiConfirmer{url: strings.TrimRight(baseURL, "/") + "/v1/notifications/recorded", token: token, hc: hc}
	return ConfirmerFunc(a.recorded)
}

type apiConfirmer struct {
	url, token string
	hc         *http.Client
}

func (a *apiConfirmer) recorded(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]bool, error) {
	out := make(map[uuid.UUID]bool, len(ids))
	for len(ids) > 0 {
		n := min(len(ids), apiBatch)
		if err := a.ask(ctx, ids[:n], out); err != nil {
			return nil, err
		}
		ids = ids[n:]
	}
	return out, nil
}

func (a *apiConfirmer) ask(ctx context.Context, ids []uuid.UUID, out map[uuid.UUID]bool) error {
	body, err := json.Marshal(map[string][]uuid.UUID{"ids": ids})
	if err != nil {
		return fmt.Errorf("notifier: confirm: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("notifier: confirm: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("notifier: confirm: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("notifier: confirm: %s answered %s: %s", a.url, resp.Status, bytes.TrimSpace(msg))
	}
	var got struct {
		Recorded []uuid.UUID `json:"recorded"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		return fmt.Errorf("notifier: confirm: decode answer: %w", err)
	}
	for _, id := range got.Recorded {
		out[id] = true
	}
	return nil
}
