package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/store"
)

// TestCredentialTouch: last use is written at most once a minute, however
// often it is reported, for keys and producers alike.
func TestCredentialTouch(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	r := newReceiver(t, s)
	p := &store.Producer{ID: uuid.New(), Name: "billing", Prefix: "nfp_", Receivers: []uuid.UUID{r.ID}}
	if err := s.CreateProducer(ctx, p, store.HashAPIKey("nfp_x")); err != nil {
		t.Fatal(err)
	}
	keys, err := s.ListAPIKeys(ctx, r.ID)
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys %+v %v", keys, err)
	}
	tests := []struct {
		name  string
		touch func(context.Context, uuid.UUID) error
		id    uuid.UUID
		table string
	}{
		{"api key", s.TouchAPIKey, keys[0].ID, "receiver_api_keys"},
		{"producer", s.TouchProducer, p.ID, "producers"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lastUsed := func() *time.Time {
				var at *time.Time
				if err := s.Pool().QueryRow(ctx, `SELECT last_used_at FROM `+tc.table+` WHERE id = $1`, tc.id).Scan(&at); err != nil {
					t.Fatal(err)
				}
				return at
			}
			if lastUsed() != nil {
				t.Fatal("used before any use")
			}
			if err := tc.touch(ctx, tc.id); err != nil {
				t.Fatal(err)
			}
			first := lastUsed()
			if first == nil {
				t.Fatal("first use not recorded")
			}
			if err := tc.touch(ctx, tc.id); err != nil {
				t.Fatal(err)
			}
			if again := lastUsed(); !again.Equal(*first) {
				t.Fatalf("written again within the minute: %s then %s", first, again)
			}
			if _, err := s.Pool().Exec(ctx, `UPDATE `+tc.table+` SET last_used_at = now() - interval '61 seconds' WHERE id = $1`, tc.id); err != nil {
				t.Fatal(err)
			}
			if err := tc.touch(ctx, tc.id); err != nil {
				t.Fatal(err)
			}
			if later := lastUsed(); time.Since(*later) > 30*time.Second {
				t.Fatalf("not written after a minute: %s", later)
			}
		})
	}
}
