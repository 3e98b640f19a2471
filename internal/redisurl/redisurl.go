// Package redisurl turns a Redis URL into notifyd's go-redis client and the
// equivalent Asynq connection option. notifyd's processes (through
// internal/config) and producers' Go clients (through notifier) parse
// NOTIFYD_REDIS_URL here, so both accept exactly the same URLs:
//
//	redis://[user:pass@]host:6379/0          one server
//	rediss://[user:pass@]host:6380/0         one server over TLS
//	unix:///run/redis.sock?db=0              one server on a Unix socket
//	redis://[user:pass@]sentinel1:26379/0?master_name=mymaster&addr=sentinel2:26379&password=…
//	redis://[user:pass@]node1:6379?cluster=true&addr=node2:6379&addr=node3:6379
//
// A master_name parameter selects Sentinel (go-redis's failover URL syntax):
// the host and every addr are sentinels, the userinfo authenticates to the
// sentinels, and username/password parameters to the master.
//
// cluster=true selects Redis Cluster (go-redis's cluster URL syntax): the
// host and every addr are seed nodes, the client discovers the rest. It is
// a parameter rather than something detected by asking the server, so the
// URL alone says which kind of client a process opens. A cluster has only
// database 0, so any other database is refused rather than ignored.
//
// It must not log a URL: URLs carry passwords.
package redisurl

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// ErrNotSingleNode is returned by SingleNode for a Sentinel or Cluster URL.
var ErrNotSingleNode = errors.New("redisurl: a Sentinel or Cluster URL has no single-node options")

// ErrClusterDB: a Cluster URL names a database other than 0, which Redis
// Cluster does not have.
var ErrClusterDB = errors.New("redis Cluster URL: a cluster has only database 0")

// Conn is a parsed Redis URL: exactly one of single, failover and cluster
// is set.
type Conn struct {
	single   *redis.Options
	failover *redis.FailoverOptions
	cluster  *redis.ClusterOptions
}

// Parse reads rawURL. Unless the URL asks for a protocol (?protocol=3), the
// client speaks RESP2: notifyd uses nothing of RESP3, and go-redis checks
// every RESP3 connection for pending push notifications around each command,
// which measured about 5 % of a worker's CPU.
func Parse(rawURL string) (*Conn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis URL: %w", err)
	}
	if u.Query().Has("cluster") {
		return parseCluster(u)
	}
	if u.Query().Has("master_name") {
		fo, err := redis.ParseFailoverURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("redis Sentinel URL: %w", err)
		}
		if fo.MasterName == "" {
			return nil, errors.New("redis Sentinel URL: master_name is empty")
		}
		if fo.Protocol == 0 {
			fo.Protocol = 2
		}
		return &Conn{failover: fo}, nil
	}
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis URL: %w", err)
	}
	if opt.Protocol == 0 {
		opt.Protocol = 2
	}
	return &Conn{single: opt}, nil
}

// parseCluster reads a URL with a cluster parameter, which must be "true".
// go-redis ignores a URL's path for a cluster, so a database in it is
// checked here: 0 or none.
func parseCluster(u *url.URL) (*Conn, error) {
	q := u.Query()
	if on, err := strconv.ParseBool(q.Get("cluster")); err != nil || !on {
		return nil, fmt.Errorf("redis URL: cluster=%q: only cluster=true is accepted", q.Get("cluster"))
	}
	if q.Has("master_name") {
		return nil, errors.New("redis URL: cluster=true and master_name (Sentinel) exclude each other")
	}
	if db := strings.Trim(u.Path, "/"); db != "" && db != "0" {
		return nil, fmt.Errorf("%w (URL path /%s)", ErrClusterDB, db)
	}
	if q.Has("db") {
		return nil, fmt.Errorf("%w (db parameter)", ErrClusterDB)
	}
	q.Del("cluster")
	v := *u
	v.RawQuery, v.Path = q.Encode(), ""
	o, err := redis.ParseClusterURL(v.String())
	if err != nil {
		return nil, fmt.Errorf("redis Cluster URL: %w", err)
	}
	if o.Protocol == 0 {
		o.Protocol = 2
	}
	return &Conn{cluster: o}, nil
}

// Sentinel reports whether the URL names a Sentinel-monitored master.
func (c *Conn) Sentinel() bool { return c.failover != nil }

// Cluster reports whether the URL names a Redis Cluster.
func (c *Conn) Cluster() bool { return c.cluster != nil }

// SingleNode returns the options of a one-server URL.
func (c *Conn) SingleNode() (*redis.Options, error) {
	if c.single == nil {
		return nil, ErrNotSingleNode
	}
	o := *c.single
	return &o, nil
}

// Client opens a go-redis client: a cluster client, which routes every
// command to the master of its key's slot; a failover client, which asks the
// sentinels for the current master and follows it when they fail over; or a
// plain one. Asynq takes it as is (asynq.NewClientFromRedisClient and
// friends). The caller closes it.
func (c *Conn) Client() redis.UniversalClient {
	if c.cluster != nil {
		co := *c.cluster
		return redis.NewClusterClient(&co)
	}
	if c.failover != nil {
		fo := *c.failover
		return redis.NewFailoverClient(&fo)
	}
	o := *c.single
	return redis.NewClient(&o)
}

// AsynqOpt is the same connection as an Asynq RedisConnOpt, for code that
// lets Asynq open its own connections (asynq.NewClient, NewInspector…).
// Asynq's option types carry fewer settings than the URL can; the ones they
// lack (protocol, retries, pool tuning) take Asynq's defaults.
func (c *Conn) AsynqOpt() asynq.RedisConnOpt {
	if co := c.cluster; co != nil {
		return asynq.RedisClusterClientOpt{
			Addrs: append([]string(nil), co.Addrs...), MaxRedirects: co.MaxRedirects,
			Username: co.Username, Password: co.Password,
			DialTimeout: co.DialTimeout, ReadTimeout: co.ReadTimeout, WriteTimeout: co.WriteTimeout,
			TLSConfig: co.TLSConfig,
		}
	}
	if fo := c.failover; fo != nil {
		return asynq.RedisFailoverClientOpt{
			MasterName: fo.MasterName, SentinelAddrs: append([]string(nil), fo.SentinelAddrs...),
			SentinelUsername: fo.SentinelUsername, SentinelPassword: fo.SentinelPassword,
			Username: fo.Username, Password: fo.Password, DB: fo.DB,
			DialTimeout: fo.DialTimeout, ReadTimeout: fo.ReadTimeout, WriteTimeout: fo.WriteTimeout,
			PoolSize: fo.PoolSize, TLSConfig: fo.TLSConfig,
		}
	}
	o := c.single
	return asynq.RedisClientOpt{
		Network: o.Network, Addr: o.Addr, Username: o.Username, Password: o.Password, DB: o.DB,
		DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
		PoolSize: o.PoolSize, TLSConfig: o.TLSConfig,
	}
}

// ErrClusterNode: a URL without cluster=true names a node of a Redis
// Cluster, whose single-node client would fail on every key another master
// holds (MOVED).
var ErrClusterNode = errors.New("redis URL: the server is a Redis Cluster node; add cluster=true to the URL")

// CheckClusterMode asks the server behind rdb, opened from a URL without
// cluster=true, whether it is a cluster node (INFO cluster), so that a
// process started with the wrong URL says so instead of failing on some
// keys only. A server that does not answer is not an error here: the
// process's readiness reports it.
func CheckClusterMode(ctx context.Context, rdb redis.UniversalClient) error {
	if _, ok := rdb.(*redis.ClusterClient); ok {
		return nil
	}
	info, err := rdb.Info(ctx, "cluster").Result()
	if err == nil && strings.Contains(info, "cluster_enabled:1") {
		return ErrClusterNode
	}
	return nil
}
