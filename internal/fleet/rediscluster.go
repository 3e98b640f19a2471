package fleet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisCluster is a Redis Cluster of three masters (no replicas, no
// persistence) on free loopback ports, each node in a directory of its own.
type RedisCluster struct {
	Nodes []*Redis
}

// maxClusterPort: a cluster node also listens on its port + 10000 (the
// cluster bus), so its port must leave room for that below 65536.
const maxClusterPort = 55535

// StartRedisCluster starts three cluster-enabled redis-servers logging under
// logDir, joins them with redis-cli --cluster create (slots split in three)
// and waits until every node reports cluster_state:ok. On error the nodes
// started so far are in the result for Stop.
func StartRedisCluster(logDir string) (*RedisCluster, error) {
	if _, err := exec.LookPath("redis-cli"); err != nil {
		return nil, fmt.Errorf("%w (redis-cli)", ErrNoRedisServer)
	}
	c := &RedisCluster{}
	for range 3 {
		n, err := NewRedis(logDir, false)
		if err != nil {
			return c, err
		}
		if n.Port, err = clusterPort(); err != nil {
			return c, err
		}
		n.Extra = []string{"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(n.Dir, "nodes.conf"),
			"--cluster-node-timeout", "5000"}
		c.Nodes = append(c.Nodes, n)
		if err := n.Start(""); err != nil {
			return c, err
		}
	}
	args := []string{"--cluster", "create"}
	for _, n := range c.Nodes {
		args = append(args, n.Addr())
	}
	out, err := exec.Command("redis-cli", append(args, "--cluster-replicas", "0", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		return c, fmt.Errorf("redis-cli --cluster create: %w\n%s", err, out)
	}
	return c, WaitFor("cluster_state:ok on every node", 20*time.Second, c.stateOK)
}

// clusterPort finds a port at most maxClusterPort whose bus port is free too.
func clusterPort() (int, error) {
	for range 200 {
		port := 20000 + rand.IntN(maxClusterPort-20000)
		if free(port) && free(port+10000) {
			return port, nil
		}
	}
	return 0, errors.New("no free port pair for a cluster node")
}

func free(port int) bool {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

func (c *RedisCluster) stateOK() bool {
	for _, n := range c.Nodes {
		info, err := c.node(n).ClusterInfo(context.Background()).Result()
		if err != nil || !strings.Contains(info, "cluster_state:ok") {
			return false
		}
	}
	return true
}

// node is a plain client of one node, which does not follow redirections;
// the caller closes it.
func (c *RedisCluster) node(n *Redis) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1})
}

// URL is NOTIFYD_REDIS_URL for the cluster: the first node, the others as
// more seeds.
func (c *RedisCluster) URL() string {
	u := "redis://" + c.Nodes[0].Addr() + "?cluster=true"
	for _, n := range c.Nodes[1:] {
		u += "&addr=" + n.Addr()
	}
	return u
}

// Stop kills every node.
func (c *RedisCluster) Stop() {
	for _, n := range c.Nodes {
		if n.Proc != nil && n.Proc.Running() {
			n.Kill()
		}
	}
}

// FlushAll empties every master: the whole cluster forgets everything, as
// if it had been rebuilt.
func (c *RedisCluster) FlushAll(ctx context.Context) error {
	for _, n := range c.Nodes {
		rdb := c.node(n)
		err := rdb.FlushAll(ctx).Err()
		rdb.Close()
		if err != nil {
			return fmt.Errorf("flushall on %s: %w", n.Addr(), err)
		}
	}
	return nil
}

// Keys lists, per node address, the keys matching pattern that node holds
// (KEYS on each master: for tests on a private cluster only).
func (c *RedisCluster) Keys(ctx context.Context, pattern string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, n := range c.Nodes {
		rdb := c.node(n)
		keys, err := rdb.Keys(ctx, pattern).Result()
		rdb.Close()
		if err != nil {
			return nil, fmt.Errorf("keys on %s: %w", n.Addr(), err)
		}
		out[n.Addr()] = keys
	}
	return out, nil
}
