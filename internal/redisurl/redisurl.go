// Package redisurl turns a Redis URL into notifyd's go-redis client and the
// equivalent Asynq connection option. notifyd's processes (through
// internal/config) and producers' Go clients (through notifier) parse
// NOTIFYD_REDIS_URL here, so both accept exactly the same URLs:
//
//	redis://[user:pass@]host:6379/0          one server
//	rediss://[user:pass@]host:6380/0         one server over TLS
//	unix:///run/redis.sock?db=0              one server on a Unix socket
//	redis://[user:pass@]sentinel1:26379/0?master_name=mymaster&addr=sentinel2:26379&password=…
//
// A master_name parameter selects Sentinel (go-redis's failover URL syntax):
// the host and every addr are sentinels, the userinfo authenticates to the
// sentinels, and username/password parameters to the master.
//
// It must not log a URL: URLs carry passwords.
package redisurl

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// ErrNotSingleNode is returned by SingleNode for a Sentinel URL.
var ErrNotSingleNode = errors.New("redisurl: a Sentinel URL has no single-node options")

// Conn is a parsed Redis URL: exactly one of single and failover is set.
type Conn struct {
	single   *redis.Options
	failover *redis.FailoverOptions
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

// Sentinel reports whether the URL names a Sentinel-monitored master.
func (c *Conn) Sentinel() bool { return c.failover != nil }

// SingleNode returns the options of a one-server URL.
func (c *Conn) SingleNode() (*redis.Options, error) {
	if c.single == nil {
		return nil, ErrNotSingleNode
	}
	o := *c.single
	return &o, nil
}

// Client opens a go-redis client: a failover client, which asks the
// sentinels for the current master and follows it when they fail over, or a
// plain one. Asynq takes it as is (asynq.NewClientFromRedisClient and
// friends). The caller closes it.
func (c *Conn) Client() *redis.Client {
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
