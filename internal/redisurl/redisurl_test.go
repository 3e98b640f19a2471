package redisurl

import (
	"errors"
	"reflect"
	"testing"

	"github.com/hibiken/asynq"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		url      string
		sentinel bool
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
			if c.Sentinel() != tt.sentinel {
				t.Errorf("Sentinel() = %v, want %v", c.Sentinel(), tt.sentinel)
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
			}
			if !reflect.DeepEqual(got, tt.want) || gotTLS != tt.tls {
				t.Errorf("AsynqOpt() = %+v (TLS %v), want %+v (TLS %v)", got, gotTLS, tt.want, tt.tls)
			}
			rdb := c.Client()
			defer rdb.Close()
			if p := rdb.Options().Protocol; p != tt.protocol {
				t.Errorf("client protocol %d, want %d", p, tt.protocol)
			}
			if (rdb.Options().TLSConfig != nil) != tt.tls {
				t.Errorf("client TLS %v, want %v", rdb.Options().TLSConfig != nil, tt.tls)
			}
			_, err = c.SingleNode()
			if tt.sentinel != errors.Is(err, ErrNotSingleNode) {
				t.Errorf("SingleNode() error %v with Sentinel() %v", err, tt.sentinel)
			}
		})
	}
}
