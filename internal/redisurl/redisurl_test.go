package redisurl

import (
	"errors"
	"reflect"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		url      string
		sentinel bool
		cluster  bool
		want     asynq.RedisConnOpt // nil: Parse must fail
		tls      bool
		protocol int
	}{
		{name: "single node", url: "redis://127.0.0.1:6379/2",
			want: asynq.RedisClientOpt{Network: "tcp", Addr: "127.0.0.1:6379", DB: 2}, protocol: 2},
		{name: "RESP3 on request", url: "redis://127.0.0.1:6379/0?protocol=3",
			want: asynq.RedisClientOpt{Network: "tcp", Addr: "127.0.0.1:6379"}, protocol: 3},
		{name: "TLS with ACL user", url: "rediss://app:s3cret@redis.example:6380/1",
			want: asynq.RedisClientOpt{Network: "tcp", Addr: "redis.example:6380", Username: "app", Password: "s3cret", DB: 1}, tls: true, protocol: 2},
		{name: "unix socket", url: "unix:///run/redis.sock?db=4",
			want: asynq.RedisClientOpt{Network: "unix", Addr: "/run/redis.sock", DB: 4}, protocol: 2},
		{name: "sentinel", sentinel: true,
			url: "redis://sentuser:sentpass@s1:26379/3?master_name=mymaster&addr=s2:26379&addr=s3:26379&username=app&password=s3cret",
			want: asynq.RedisFailoverClientOpt{MasterName: "mymaster", SentinelAddrs: []string{"s1:26379", "s2:26379", "s3:26379"},
				SentinelUsername: "sentuser", SentinelPassword: "sentpass", Username: "app", Password: "s3cret", DB: 3}, protocol: 2},
		{name: "sentinel over TLS", sentinel: true, url: "rediss://s1:26379/0?master_name=mymaster&addr=s2:26379",
			want: asynq.RedisFailoverClientOpt{MasterName: "mymaster", SentinelAddrs: []string{"s1:26379", "s2:26379"}}, tls: true, protocol: 2},
		{name: "cluster", cluster: true, url: "redis://127.0.0.1:7000?cluster=true&addr=127.0.0.1:7001&addr=127.0.0.1:7002",
			want: asynq.RedisClusterClientOpt{Addrs: []string{"127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"}}, protocol: 2},
		{name: "cluster with database 0", cluster: true, url: "redis://127.0.0.1:7000/0?cluster=true",
			want: asynq.RedisClusterClientOpt{Addrs: []string{"127.0.0.1:7000"}}, protocol: 2},
		{name: "cluster over TLS with ACL user and options", cluster: true,
			url:  "rediss://app:s3cret@n1.example:6380/?cluster=1&addr=n2.example:6380&max_redirects=5&protocol=3",
			want: asynq.RedisClusterClientOpt{Addrs: []string{"n1.example:6380", "n2.example:6380"}, MaxRedirects: 5, Username: "app", Password: "s3cret"},
			tls:  true, protocol: 3},
		{name: "cluster with database 2", url: "redis://127.0.0.1:7000/2?cluster=true"},
		{name: "cluster with db parameter", url: "redis://127.0.0.1:7000?cluster=true&db=1"},
		{name: "cluster=false", url: "redis://127.0.0.1:7000?cluster=false"},
		{name: "cluster=yes", url: "redis://127.0.0.1:7000?cluster=yes"},
		{name: "cluster and sentinel", url: "redis://127.0.0.1:7000?cluster=true&master_name=m"},
		{name: "cluster with unknown option", url: "redis://127.0.0.1:7000?cluster=true&colour=blue"},
		{name: "cluster with bad addr", url: "redis://127.0.0.1:7000?cluster=true&addr=n2"},
		{name: "cluster on a unix socket", url: "unix:///run/redis.sock?cluster=true"},
		{name: "unknown scheme", url: "http://127.0.0.1:6379"},
		{name: "empty master name", url: "redis://s1:26379/0?master_name="},
		{name: "sentinel with unknown option", url: "redis://s1:26379/0?master_name=m&colour=blue"},
		{name: "sentinel with bad addr", url: "redis://s1:26379/0?master_name=m&addr=s2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.url)
			if tt.want == nil {
				if err == nil {
					t.Fatalf("Parse(%q) succeeded, want an error", tt.url)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Sentinel() != tt.sentinel || c.Cluster() != tt.cluster {
				t.Errorf("Sentinel() = %v, Cluster() = %v, want %v, %v", c.Sentinel(), c.Cluster(), tt.sentinel, tt.cluster)
			}
			got := c.AsynqOpt()
			var gotTLS bool
			switch o := got.(type) {
			case asynq.RedisClientOpt:
				gotTLS, o.TLSConfig = o.TLSConfig != nil, nil
				got = o
			case asynq.RedisFailoverClientOpt:
				gotTLS, o.TLSConfig = o.TLSConfig != nil, nil
				got = o
			case asynq.RedisClusterClientOpt:
				gotTLS, o.TLSConfig = o.TLSConfig != nil, nil
				got = o
			}
			if !reflect.DeepEqual(got, tt.want) || gotTLS != tt.tls {
				t.Errorf("AsynqOpt() = %+v (TLS %v), want %+v (TLS %v)", got, gotTLS, tt.want, tt.tls)
			}
			rdb := c.Client()
			defer rdb.Close()
			protocol, tlsConf := clientOptions(t, rdb, tt.cluster)
			if protocol != tt.protocol {
				t.Errorf("client protocol %d, want %d", protocol, tt.protocol)
			}
			if tlsConf != tt.tls {
				t.Errorf("client TLS %v, want %v", tlsConf, tt.tls)
			}
			_, err = c.SingleNode()
			if (tt.sentinel || tt.cluster) != errors.Is(err, ErrNotSingleNode) {
				t.Errorf("SingleNode() error %v with Sentinel() %v, Cluster() %v", err, tt.sentinel, tt.cluster)
			}
		})
	}
}

// clientOptions reads the protocol and whether TLS is on from the client
// Client opened, which must be a cluster client exactly when cluster.
func clientOptions(t *testing.T, rdb redis.UniversalClient, cluster bool) (protocol int, tls bool) {
	t.Helper()
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		if !cluster {
			t.Fatalf("Client() is a cluster client")
		}
		return c.Options().Protocol, c.Options().TLSConfig != nil
	case *redis.Client:
		if cluster {
			t.Fatalf("Client() is %T, want a cluster client", rdb)
		}
		return c.Options().Protocol, c.Options().TLSConfig != nil
	}
	t.Fatalf("Client() is %T", rdb)
	return 0, false
}

func TestClusterDatabaseRefused(t *testing.T) {
	t.Parallel()
	_, err := Parse("redis://127.0.0.1:7000/3?cluster=true")
	if !errors.Is(err, ErrClusterDB) {
		t.Fatalf("Parse error %v, want ErrClusterDB", err)
	}
}
