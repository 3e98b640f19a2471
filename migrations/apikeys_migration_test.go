package migrations_test

import (
	"context"
	"crypto/sha256"
	"testing"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/store"
)

// TestAPIKeysMigration: a receiver whose key was stored before 00006 (one
// hash on the receivers row) keeps authenticating after it, as its key
// "default"; and 00006 rolls back keeping each receiver's oldest key.
func TestAPIKeysMigration(t *testing.T) {
	ctx := context.Background()
	dbURL, db, p := databaseAt(t, 5)
	id, key := uuid.New(), "nfy_from-before-the-migration"
	hash := sha256.Sum256([]byte(key))
	if _, err := db.ExecContext(ctx, `INSERT INTO receivers (id, name, callback_url, api_key_hash, signing_secret)
		VALUES ($1, 'old', 'https://example.com/cb', $2, 'whsec_x')`, id, hash[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("up: %v", err)
	}

	st, err := store.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	k, err := st.ReceiverByAPIKey(ctx, store.HashAPIKey(key))
	if err != nil || k.ReceiverID != id || !k.Active {
		t.Fatalf("the old key after the migration: %+v %v", k, err)
	}
	keys, err := st.ListAPIKeys(ctx, id)
	if err != nil || len(keys) != 1 || keys[0].Name != "default" || keys[0].ID != id {
		t.Fatalf("keys after the migration: %+v %v", keys, err)
	}
	// A second key, then back down: the oldest key goes back on the row.
	if err := st.CreateAPIKey(ctx, &store.APIKey{ID: uuid.New(), ReceiverID: id, Name: "new", Prefix: "nfy_"},
		store.HashAPIKey("nfy_new")); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 5); err != nil {
		t.Fatalf("down again: %v", err)
	}
	var back []byte
	if err := db.QueryRowContext(ctx, `SELECT api_key_hash FROM receivers WHERE id = $1`, id).Scan(&back); err != nil ||
		string(back) != string(hash[:]) {
		t.Fatalf("api_key_hash after rolling back: %x %v", back, err)
	}
}
