package fleet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the master name the sentinels monitor.
const SentinelMaster = "mymaster"

// Sentinel is a Redis Sentinel installation on free loopback ports: a
// master, one replica and three sentinels (quorum 2, down-after 1 s).
type Sentinel struct {
	Nodes     [2]*Redis // Nodes[0] starts as master, Nodes[1] as its replica
	Sentinels []*Proc
	Ports     []int
}

// StartSentinel starts the set, logging under logDir, and waits until every
// sentinel knows the replica and its two peers. aof turns on the nodes' AOF.
func StartSentinel(logDir string, aof bool) (*Sentinel, error) {
	s := &Sentinel{}
	for i := range s.Nodes {
		n, err := NewRedis(logDir, aof)
		if err != nil {
			return nil, err
		}
		s.Nodes[i] = n
	}
	if err := s.Nodes[0].Start(""); err != nil {
		return s, err
	}
	if err := s.Nodes[1].Start(s.Nodes[0].Addr()); err != nil {
		return s, err
	}
	for i := range 3 {
		if err := s.startSentinel(logDir, i); err != nil {
			return s, err
		}
	}
	err := WaitFor("sentinels to discover the replica and each other", 30*time.Second, func() bool {
		for _, port := range s.Ports {
			c := redis.NewSentinelClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)})
			m, err := c.Master(context.Background(), SentinelMaster).Result()
			c.Close()
			if err != nil || m["num-slaves"] != "1" || m["num-other-sentinels"] != "2" {
				return false
			}
		}
		return true
	})
	return s, err
}

func (s *Sentinel) startSentinel(logDir string, i int) error {
	port, err := FreePort()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(logDir, "sentinel-")
	if err != nil {
		return fmt.Errorf("sentinel dir: %w", err)
	}
	conf := filepath.Join(dir, "sentinel.conf") // sentinels rewrite their config: a file of their own
	body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n"+
		"sentinel monitor %s 127.0.0.1 %d 2\n"+
		"sentinel down-after-milliseconds %s 1000\n"+
		"sentinel failover-timeout %s 5000\n",
		port, dir, SentinelMaster, s.Nodes[0].Port, SentinelMaster, SentinelMaster)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return fmt.Errorf("sentinel config: %w", err)
	}
	p, err := Start(logDir, fmt.Sprintf("sentinel-%d", i+1), nil, "redis-server", conf, "--sentinel")
	if err != nil {
		return err
	}
	s.Sentinels = append(s.Sentinels, p)
	s.Ports = append(s.Ports, port)
	return nil
}

// Stop kills every process of the set.
func (s *Sentinel) Stop() {
	for _, p := range s.Sentinels {
		p.Kill()
	}
	for _, n := range s.Nodes {
		if n != nil && n.Proc != nil {
			n.Proc.Kill()
		}
	}
}

// URL is NOTIFYD_REDIS_URL for the set, in go-redis's failover syntax.
func (s *Sentinel) URL() string {
	return fmt.Sprintf("redis://127.0.0.1:%d/0?master_name=%s&addr=127.0.0.1:%d&addr=127.0.0.1:%d",
		s.Ports[0], SentinelMaster, s.Ports[1], s.Ports[2])
}

// MasterAddr is the master the first sentinel names ("" if it cannot say).
func (s *Sentinel) MasterAddr() string {
	c := redis.NewSentinelClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(s.Ports[0])})
	defer c.Close()
	a, err := c.GetMasterAddrByName(context.Background(), SentinelMaster).Result()
	if err != nil || len(a) != 2 {
		return ""
	}
	return a[0] + ":" + a[1]
}

// roles is the current master and replica node, by the first sentinel.
func (s *Sentinel) roles() (master, replica *Redis) {
	if s.MasterAddr() == s.Nodes[1].Addr() {
		return s.Nodes[1], s.Nodes[0]
	}
	return s.Nodes[0], s.Nodes[1]
}

// Master is the node the first sentinel names master.
func (s *Sentinel) Master() *Redis {
	m, _ := s.roles()
	return m
}

// KillMaster SIGKILLs the current master and waits until the sentinels have
// promoted the replica and it answers as master. It returns the time from
// the kill to that point. The killed node is then started again, empty; the
// sentinels turn it into a replica of the new master.
func (s *Sentinel) KillMaster() (time.Duration, error) {
	old, promoted := s.roles()
	if err := old.Kill(); err != nil {
		return 0, err
	}
	killed := time.Now()
	if err := s.waitMaster(promoted); err != nil {
		return 0, err
	}
	took := time.Since(killed)
	if err := old.Wipe(); err != nil {
		return took, err
	}
	if err := old.Start(promoted.Addr()); err != nil {
		return took, err
	}
	return took, s.waitReplicated(promoted)
}

// Failover asks the sentinels for a coordinated failover (SENTINEL
// FAILOVER: the replica is caught up before it is promoted) and waits until
// the replica answers as master and the old master replicates it. Sentinels
// refuse while they do not yet count the replica as good (it reconnected
// less than a refresh ago, after a restart of the master) or while an
// earlier failover is still in progress; Failover asks again until they
// accept, for at most failoverPatience.
func (s *Sentinel) Failover() (time.Duration, error) {
	_, promoted := s.roles()
	start := time.Now()
	c := redis.NewSentinelClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(s.Ports[0])})
	defer c.Close()
	for {
		err := c.Failover(context.Background(), SentinelMaster).Err()
		if err == nil {
			break
		}
		refused := strings.Contains(err.Error(), "NOGOODSLAVE") || strings.Contains(err.Error(), "INPROG")
		if !refused || time.Since(start) > failoverPatience {
			return 0, fmt.Errorf("sentinel failover (asked for %s): %w", time.Since(start).Round(time.Millisecond), err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err := s.waitMaster(promoted); err != nil {
		return 0, err
	}
	return time.Since(start), s.waitReplicated(promoted)
}

// failoverPatience bounds how long Failover asks again, and how long the
// waits for a promotion and a replica last: three of the sentinels' 10 s
// replica refreshes, and a loaded machine's slower elections.
const failoverPatience = 30 * time.Second

func (s *Sentinel) waitMaster(n *Redis) error {
	pc := redis.NewClient(&redis.Options{Addr: n.Addr()})
	defer pc.Close()
	return WaitFor("the sentinels to promote "+n.Addr(), 2*failoverPatience, func() bool {
		role, err := pc.Do(context.Background(), "role").Slice()
		return s.MasterAddr() == n.Addr() && err == nil && len(role) > 0 && role[0] == "master"
	})
}

// waitReplicated waits until master has its replica back, so that a
// producer asking for a replica's acknowledgement can get one again.
func (s *Sentinel) waitReplicated(master *Redis) error {
	pc := redis.NewClient(&redis.Options{Addr: master.Addr()})
	defer pc.Close()
	return WaitFor("the other node to replicate "+master.Addr(), 30*time.Second, func() bool {
		n, err := pc.Do(context.Background(), "wait", 1, 100).Int64()
		return err == nil && n == 1
	})
}
