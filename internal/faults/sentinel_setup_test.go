package faults

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const sentinelMaster = "mymaster"

// sentinelSet is a Redis Sentinel installation of the test's own on free
// loopback ports: a master, one replica and three sentinels (quorum 2), each
// redis-server in its own temporary directory without persistence.
type sentinelSet struct {
	t         *testing.T
	nodes     [2]*sentinelNode // nodes[0] starts as master, nodes[1] as its replica
	sentinels []*proc
	sentPorts []int
}

type sentinelNode struct {
	port int
	dir  string
	proc *proc
	runs int
}

func (n *sentinelNode) addr() string { return "127.0.0.1:" + strconv.Itoa(n.port) }

func startSentinelSet(t *testing.T) *sentinelSet {
	t.Helper()
	s := &sentinelSet{t: t}
	for i := range s.nodes {
		s.nodes[i] = &sentinelNode{port: freePort(t), dir: t.TempDir()}
	}
	s.startNode(s.nodes[0], "")
	s.startNode(s.nodes[1], s.nodes[0].addr())
	for i := range 3 {
		port := freePort(t)
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf") // sentinels rewrite their config: a file of their own
		body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n"+
			"sentinel monitor %s 127.0.0.1 %d 2\n"+
			"sentinel down-after-milliseconds %s 1000\n"+
			"sentinel failover-timeout %s 5000\n",
			port, dir, sentinelMaster, s.nodes[0].port, sentinelMaster, sentinelMaster)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		s.sentinels = append(s.sentinels, startProc(t, fmt.Sprintf("sentinel-%d", i+1), nil, "redis-server", conf, "--sentinel"))
		s.sentPorts = append(s.sentPorts, port)
	}
	// Ready when every sentinel knows the replica and its two peers.
	waitFor(t, "sentinels to discover the replica and each other", 30*time.Second, func() bool {
		for _, port := range s.sentPorts {
			c := redis.NewSentinelClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)})
			m, err := c.Master(context.Background(), sentinelMaster).Result()
			c.Close()
			if err != nil || m["num-slaves"] != "1" || m["num-other-sentinels"] != "2" {
				return false
			}
		}
		return true
	})
	return s
}

// startNode runs node as a master, or as a replica of replicaOf.
func (s *sentinelSet) startNode(n *sentinelNode, replicaOf string) {
	s.t.Helper()
	n.runs++
	args := []string{"--port", strconv.Itoa(n.port), "--bind", "127.0.0.1", "--dir", n.dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no",
		// The first full sync starts at once instead of after 5 s.
		"--repl-diskless-sync-delay", "0"}
	if replicaOf != "" {
		host, port := replicaOf[:len("127.0.0.1")], replicaOf[len("127.0.0.1:"):]
		args = append(args, "--replicaof", host, port)
	}
	n.proc = startProc(s.t, fmt.Sprintf("redis-%d-%d", n.port, n.runs), nil, "redis-server", args...)
	c := redis.NewClient(&redis.Options{Addr: n.addr()})
	defer c.Close()
	waitFor(s.t, "redis-server on "+n.addr(), 10*time.Second, func() bool { return c.Ping(context.Background()).Err() == nil })
}

// url is NOTIFYD_REDIS_URL for the set, in go-redis's failover syntax.
func (s *sentinelSet) url() string {
	return fmt.Sprintf("redis://127.0.0.1:%d/0?master_name=%s&addr=127.0.0.1:%d&addr=127.0.0.1:%d",
		s.sentPorts[0], sentinelMaster, s.sentPorts[1], s.sentPorts[2])
}

// masterAddr is the master the first sentinel names.
func (s *sentinelSet) masterAddr() string {
	c := redis.NewSentinelClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(s.sentPorts[0])})
	defer c.Close()
	a, err := c.GetMasterAddrByName(context.Background(), sentinelMaster).Result()
	if err != nil || len(a) != 2 {
		return ""
	}
	return a[0] + ":" + a[1]
}

// killMaster SIGKILLs the current master and waits until the sentinels have
// promoted the replica and it answers as master. It returns the time from
// the kill to that point. The killed node is then started again, empty; the
// sentinels turn it into a replica of the new master, so that a producer
// asking for a replica's acknowledgement can get one again.
func (s *sentinelSet) killMaster() time.Duration {
	s.t.Helper()
	old, promoted := s.nodes[0], s.nodes[1]
	if s.masterAddr() != old.addr() {
		old, promoted = promoted, old
	}
	old.proc.signal(s.t, syscall.SIGKILL)
	killed := time.Now()
	if !old.proc.wait(10 * time.Second) {
		s.t.Fatal("master did not die")
	}
	pc := redis.NewClient(&redis.Options{Addr: promoted.addr()})
	defer pc.Close()
	waitFor(s.t, "the sentinels to promote the replica", 30*time.Second, func() bool {
		role, err := pc.Do(context.Background(), "role").Slice()
		return s.masterAddr() == promoted.addr() && err == nil && len(role) > 0 && role[0] == "master"
	})
	took := time.Since(killed)
	s.startNode(old, promoted.addr())
	waitFor(s.t, "the restarted node to replicate the new master", 30*time.Second, func() bool {
		n, err := pc.Do(context.Background(), "wait", 1, 100).Int64()
		return err == nil && n == 1
	})
	return took
}
