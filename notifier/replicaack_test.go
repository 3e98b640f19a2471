package notifier

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/registry"
	"github.com/notifyd/notifyd/internal/tasks"
)

// privateRedis starts a redis-server of the test's own on a free loopback
// port (extra args e.g. --replicaof) and returns its address.
func privateRedis(t *testing.T, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command("redis-server", append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir()}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := "127.0.0.1:" + strconv.Itoa(port)
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); c.Ping(context.Background()).Err() != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s did not start", addr)
		}
	}
	return addr
}

// TestReplicaAck runs Notify with WithReplicaAck against a real master with
// one replica: asking for one replica succeeds and the task is on the
// replica; asking for two fails with ErrReplicaAck, and a retry with the same
// key (the task is already there, so the enqueue writes nothing) still waits
// for the replicas rather than succeeding blindly.
func TestReplicaAck(t *testing.T) {
	t.Parallel()
	master := privateRedis(t, "--repl-diskless-sync-delay", "0") // no 5 s wait before the first sync
	replica := privateRedis(t, "--replicaof", "127.0.0.1", master[len("127.0.0.1:"):])
	ctx := context.Background()
	mc := redis.NewClient(&redis.Options{Addr: master})
	defer mc.Close()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	waitFor("the replica to connect", func() bool {
		n, err := mc.Do(ctx, "wait", 1, 100).Int64()
		return err == nil && n == 1
	})
	receiver := uuid.New()
	if err := registry.Sync(ctx, mc, map[uuid.UUID]bool{receiver: true}); err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(&redis.Options{Addr: replica})
	defer rc.Close()

	// A refusal takes the whole WAIT (300 ms); an acknowledgement gets a
	// generous one, so that a loaded machine does not make it a refusal.
	const refuse, ack = 300 * time.Millisecond, 5 * time.Second
	tests := []struct {
		name    string
		key     string
		wanted  int
		wantErr bool
	}{
		{name: "one replica acknowledges", key: "order-1", wanted: 1},
		{name: "two replicas wanted, one exists", key: "order-2", wanted: 2, wantErr: true},
		{name: "retry of an existing task still waits", key: "order-2", wanted: 2, wantErr: true},
		{name: "retry of an existing task with one replica", key: "order-2", wanted: 1},
	}
	for _, tt := range tests {
		timeout := ack
		if tt.wantErr {
			timeout = refuse
		}
		c, err := NewFromURL("redis://"+master+"/0", WithReplicaAck(tt.wanted, timeout))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		id, err := c.Notify(ctx, validNotification(receiver, tt.key))
		took := time.Since(start)
		c.Close()
		var ackErr *ReplicaAckError
		switch {
		case tt.wantErr && !errors.Is(err, ErrReplicaAck):
			t.Errorf("%s: err %v, want ErrReplicaAck", tt.name, err)
		case tt.wantErr && (!errors.As(err, &ackErr) || ackErr.Acked != 1 || took < 250*time.Millisecond):
			t.Errorf("%s: err %v after %s, want 1 of 2 replicas after the 300ms WAIT", tt.name, err, took)
		case !tt.wantErr && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case !tt.wantErr:
			// Acknowledged means the replica already holds the task.
			d := tasks.Deliver{ID: uuid.MustParse(id), Attempt: 1}
			n, err := rc.Exists(ctx, "asynq:{"+d.Queue()+"}:t:"+d.TaskID()).Result()
			if err != nil || n != 1 {
				t.Errorf("%s: task %s on the replica: %d %v", tt.name, id, n, err)
			}
		}
	}
}
