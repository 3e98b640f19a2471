package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
)

// claimRedisDB takes the index the way internal/testenv does (a key in DB
// 0 with a TTL), so that the bench never flushes a database a test is using
// and tests never pick the bench's. It waits while the index is taken and
// returns a release function; the claim is refreshed until released.
func claimRedisDB(ctx context.Context, addr string, db int, note func(string)) (func(), error) {
	admin := redis.NewClient(&redis.Options{Addr: addr})
	key := fmt.Sprintf("notifyd:testenv:db:%d", db)
	token := fmt.Sprintf("bench-%d-%d", os.Getpid(), time.Now().UnixNano())
	deadline := time.Now().Add(3 * time.Minute)
	noted := false
	for {
		ok, err := admin.SetNX(ctx, key, token, 2*time.Minute).Result()
		if err != nil {
			admin.Close()
			return nil, fmt.Errorf("redis at %s (run scripts/services.sh): %w", addr, err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			admin.Close()
			return nil, fmt.Errorf("redis db %d is claimed by someone else (key %s); pick another with --redis-db", db, key)
		}
		if !noted {
			note(fmt.Sprintf("redis db %d is in use by a test; waiting for it (or pass --redis-db)", db))
			noted = true
		}
		select {
		case <-ctx.Done():
			admin.Close()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				admin.Expire(context.Background(), key, 2*time.Minute)
			}
		}
	}()
	return func() {
		close(stop)
		<-done
		if v, _ := admin.Get(context.Background(), key).Result(); v == token {
			admin.Del(context.Background(), key)
		}
		admin.Close()
	}, nil
}
