package config

import (
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/notifyd/notifyd/internal/ingest"
	"github.com/notifyd/notifyd/internal/retry"
	"github.com/redis/go-redis/v9"
)

func TestRedisOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url          string
		wantProtocol int
		wantDB       int
		wantErr      bool
	}{
		{url: "redis://127.0.0.1:6379/0", wantProtocol: 2},
		{url: "redis://127.0.0.1:6379/3?protocol=3", wantProtocol: 3, wantDB: 3},
		{url: "redis://127.0.0.1:6379/1?protocol=2", wantProtocol: 2, wantDB: 1},
		{url: "http://127.0.0.1:6379", wantErr: true},
	}
	for _, tt := range tests {
		opt, err := RedisOptions(tt.url)
		if tt.wantErr {
			if err == nil {
				t.Errorf("%s: want an error", tt.url)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.url, err)
		}
		if opt.Protocol != tt.wantProtocol || opt.DB != tt.wantDB {
			t.Errorf("%s: protocol %d db %d, want %d and %d", tt.url, opt.Protocol, opt.DB, tt.wantProtocol, tt.wantDB)
		}
	}
}

// TestRedis checks that the one constructor gives a failover client and
// Asynq's failover option for a Sentinel URL, and a plain pair otherwise.
func TestRedis(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url      string
		sentinel bool
		cluster  bool
		wantErr  bool
	}{
		{url: "redis://127.0.0.1:6379/0"},
		{url: "rediss://app:pw@127.0.0.1:6380/1"},
		{url: "redis://127.0.0.1:26379/0?master_name=mymaster&addr=127.0.0.1:26380&password=pw", sentinel: true},
		{url: "redis://127.0.0.1:26379/0?master_name=mymaster&bogus=1", wantErr: true},
		{url: "redis://127.0.0.1:7000?cluster=true&addr=127.0.0.1:7001", cluster: true},
		{url: "redis://127.0.0.1:7000/1?cluster=true", wantErr: true},
	}
	for _, tt := range tests {
		rdb, opt, err := Redis(tt.url)
		if tt.wantErr {
			if err == nil {
				t.Errorf("%s: want an error", tt.url)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.url, err)
		}
		_, isFailover := opt.(asynq.RedisFailoverClientOpt)
		_, isSingle := opt.(asynq.RedisClientOpt)
		_, isCluster := opt.(asynq.RedisClusterClientOpt)
		if isFailover != tt.sentinel || isCluster != tt.cluster || isSingle == (tt.sentinel || tt.cluster) {
			t.Errorf("%s: Asynq option %T, sentinel %v, cluster %v", tt.url, opt, tt.sentinel, tt.cluster)
		}
		if _, ok := rdb.(*redis.ClusterClient); ok != tt.cluster {
			t.Errorf("%s: client %T, cluster %v", tt.url, rdb, tt.cluster)
		}
		// A failover client's address is the master's, learned from the
		// sentinels: go-redis names it "FailoverClient" until connected.
		if c, ok := rdb.(*redis.Client); ok && (c.Options().Addr == "FailoverClient") != tt.sentinel {
			t.Errorf("%s: client address %q, sentinel %v", tt.url, c.Options().Addr, tt.sentinel)
		}
		rdb.Close()
	}
}

// TestLoad pins Load's precedence (flag over variable over default), its
// parsing and its checks, each reported under the variable's name.
func TestLoad(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(t *testing.T, c *Config)
		wantErr []string
	}{
		{name: "defaults", check: func(t *testing.T, c *Config) {
			def := retry.Default()
			if c.HTTPAddr != ":8080" || !reflect.DeepEqual(c.Retry, def) || c.WorkerConcurrency != 100 || c.ReceiverConcurrency != 20 ||
				c.BreakerFailures != 10 || c.BreakerCooldown != 30*time.Second || c.DeliveryTimeout != 10*time.Second ||
				c.ShutdownTimeout != 30*time.Second || c.MaxPayload != ingest.DefaultMaxPayload || c.NoMigrate ||
				c.Retention != 720*time.Hour || c.LogLevel != slog.LevelInfo || c.LogFormat != "json" ||
				c.OutboxTable != "notifyd_outbox" || c.RelayReplicaAck != 0 || c.ProducerTokens != nil ||
				c.RedriveSchedule != "@every 1m" || c.SummarySchedule != "0 0 * * *" {
				t.Errorf("defaults: %+v", c)
			}
		}},
		{name: "env over default, flag over env",
			args: []string{"-worker-concurrency", "7", "-log-level", "debug"},
			env: map[string]string{"NOTIFYD_WORKER_CONCURRENCY": "5", "NOTIFYD_RETRY_BASE": "2s",
				"NOTIFYD_PRODUCER_TOKENS": " a, ,b ", "NOTIFYD_NO_MIGRATE": "true", "NOTIFYD_RELAY_REPLICA_ACK": "1"},
			check: func(t *testing.T, c *Config) {
				if c.WorkerConcurrency != 7 || c.Retry.Base != 2*time.Second || c.LogLevel != slog.LevelDebug ||
					!slices.Equal(c.ProducerTokens, []string{"a", "b"}) || !c.NoMigrate || c.RelayReplicaAck != 1 {
					t.Errorf("got %+v", c)
				}
			}},
		{name: "every bad value is reported",
			args: []string{"-retry-max-attempts", "0", "-delivery-timeout", "1m", "-log-format", "xml", "-retention", "long"},
			env:  map[string]string{"NOTIFYD_BREAKER_FAILURES": "many", "NOTIFYD_ALLOW_PRIVATE_TARGETS": "10.0.0.0/33"},
			wantErr: []string{"NOTIFYD_RETRY_MAX_ATTEMPTS: must be at least 1", "NOTIFYD_DELIVERY_TIMEOUT: must be between",
				"NOTIFYD_LOG_FORMAT", "NOTIFYD_RETENTION", "NOTIFYD_BREAKER_FAILURES", "NOTIFYD_ALLOW_PRIVATE_TARGETS"}},
		{name: "unparsable retry attempts skip the range check",
			args:    []string{"-retry-max-attempts", "x"},
			wantErr: []string{"NOTIFYD_RETRY_MAX_ATTEMPTS: strconv.Atoi"}},
		{name: "stray argument", args: []string{"extra"}, wantErr: []string{`unexpected argument "extra"`}},
		{name: "unknown flag", args: []string{"-nope"}, wantErr: []string{"flag provided but not defined"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := func(k string) string { return tt.env[k] }
			c, err := Load("test", tt.args, env, io.Discard)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error; want %q", tt.wantErr)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

// NOTIFYD_TASK_KEY is parsed at load: a malformed or short key stops the
// process, a list makes its first key the signing one.
func TestTaskKey(t *testing.T) {
	t.Parallel()
	good := "k2:" + strings.Repeat("A", 43) + ",k1:" + strings.Repeat("B", 43)
	for _, tc := range []struct {
		name, value, signer string
		wantErr             bool
	}{
		{name: "unset", value: ""},
		{name: "rotation", value: good, signer: "k2"},
		{name: "short", value: "k1:c2hvcnQ=", wantErr: true},
		{name: "no id", value: strings.Repeat("A", 43), wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := func(k string) string {
				if k == "NOTIFYD_TASK_KEY" {
					return tc.value
				}
				return ""
			}
			c, err := Load("notifyd", nil, env, io.Discard)
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), "NOTIFYD_TASK_KEY") {
					t.Fatalf("err = %v, want one naming NOTIFYD_TASK_KEY", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.TaskKeys.SigningKeyID(); got != tc.signer {
				t.Fatalf("signing key %q, want %q", got, tc.signer)
			}
		})
	}
}
