package scheduler

import (
	"context"
	"maps"
	"sync"
	"testing"
	"time"
)

// TestGaugesRunOnEveryReplica: the gauges job only reads, so it takes no
// lock: two replicas run it at the same moment, while a third holds every
// job lock, and each reads the database's values.
func TestGaugesRunOnEveryReplica(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.receiver()
	off := e.receiver()
	if _, err := e.pool.Exec(context.Background(), `UPDATE receivers SET active = false WHERE id = $1`, off.ID); err != nil {
		t.Fatal(err)
	}
	e.notification(r, "next_attempt_at = "+ago(20*time.Minute))
	e.notification(r, "next_attempt_at = now() + interval '1 hour'")
	e.notification(r, "status = 'failed', next_attempt_at = NULL")
	e.notification(r, "status = 'delivered', next_attempt_at = NULL")

	// The holder stays inside its redrive run until both replicas are done.
	holder := e.replica(Config{})
	held, release := make(chan struct{}), make(chan struct{})
	holder.afterLock = func(string) {
		close(held)
		<-release
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = holder.RunRedrive(context.Background())
	}()
	<-held
	defer func() {
		close(release)
		<-done
	}()

	replicas := []*Scheduler{e.replica(Config{}), e.replica(Config{})}
	got := make([]Gauges, len(replicas))
	errs := make([]error, len(replicas))
	var wg sync.WaitGroup
	for i, s := range replicas {
		wg.Go(func() { got[i], errs[i] = s.RunGauges(context.Background()) })
	}
	wg.Wait()
	for i, g := range got {
		if errs[i] != nil {
			t.Fatalf("replica %d: %v", i, errs[i])
		}
		// Never analysed: delivered and cancelled have no estimate yet.
		if want := map[string]int64{"pending": 2, "failed": 1, "delivered": 0, "cancelled": 0}; !maps.Equal(g.Notifications, want) {
			t.Errorf("replica %d: notifications %v, want %v", i, g.Notifications, want)
		}
		if want := map[string]int64{"active": 1, "failing": 0, "disabled": 0, "inactive": 1}; !maps.Equal(g.Receivers, want) {
			t.Errorf("replica %d: receivers %v, want %v", i, g.Receivers, want)
		}
		if g.OldestDue < 20*time.Minute || g.OldestDue > 25*time.Minute {
			t.Errorf("replica %d: oldest due %s, want about 20 minutes", i, g.OldestDue)
		}
	}
}
