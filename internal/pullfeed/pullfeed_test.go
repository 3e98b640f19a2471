package pullfeed

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/testenv"
)

// TestFeedHearsItsReceiverOnly: an offer published after Subscribe
// returns is heard by that receiver's feed, not by another receiver's.
func TestFeedHearsItsReceiverOnly(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(testenv.Redis(t))
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	mine, other := uuid.New(), uuid.New()
	feed, err := Subscribe(ctx, rdb, mine)
	if err != nil {
		t.Fatal(err)
	}
	defer feed.Close()
	otherFeed, err := Subscribe(ctx, rdb, other)
	if err != nil {
		t.Fatal(err)
	}
	defer otherFeed.Close()

	want := Offer{NotificationID: uuid.New(), Attempt: -2}
	if err := Publish(ctx, rdb, mine, want); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-feed.C():
		if got, err := Parse(m); err != nil || got != want {
			t.Fatalf("heard %+v (%v), want %+v", got, err, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("offer not heard within 10 s")
	}
	select {
	case m := <-otherFeed.C():
		t.Fatalf("another receiver's feed heard %q", m.Payload)
	case <-time.After(200 * time.Millisecond):
	}
}

func TestParseRefusesWhatPublishDoesNotWrite(t *testing.T) {
	t.Parallel()
	for _, payload := range []string{"", "x", "not-a-uuid 1", uuid.NewString() + " one", uuid.NewString()} {
		if o, err := parse(payload); err == nil {
			t.Errorf("parse(%q) = %+v, want an error", payload, o)
		}
	}
}
