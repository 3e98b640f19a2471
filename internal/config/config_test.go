package config

import (
	"io"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
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
		wantErr  bool
	}{
		{url: "redis://127.0.0.1:6379/0"},
		{url: "rediss://app:pw@127.0.0.1:6380/1"},
		{url: "redis://127.0.0.1:26379/0?master_name=mymaster&addr=127.0.0.1:26380&password=pw", sentinel: true},
		{url: "redis://127.0.0.1:26379/0?master_name=mymaster&bogus=1", wantErr: true},
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
		if isFailover != tt.sentinel || isSingle == tt.sentinel {
			t.Errorf("%s: Asynq option %T, sentinel %v", tt.url, opt, tt.sentinel)
		}
		// A failover client's address is the master's, learned from the
		// sentinels: go-redis names it "FailoverClient" until connected.
		if got := rdb.Options().Addr == "FailoverClient"; got != tt.sentinel {
			t.Errorf("%s: client address %q, sentinel %v", tt.url, rdb.Options().Addr, tt.sentinel)
		}
		rdb.Close()
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
