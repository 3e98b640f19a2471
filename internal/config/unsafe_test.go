package config

import (
	"encoding/base64"
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// safeEnv is a production configuration with nothing unsafe in it.
func safeEnv() map[string]string {
	key := base64.StdEncoding.EncodeToString(make([]byte, 32))
	return map[string]string{
		"NOTIFYD_ADMIN_TOKEN":     strings.Repeat("a", 32),
		"NOTIFYD_PRODUCER_TOKENS": strings.Repeat("p", 40),
		"NOTIFYD_SECRET_KEYS":     "k1:" + key,
		"NOTIFYD_TASK_KEY":        "t1:" + key,
		"NOTIFYD_REDIS_URL":       "redis://notifyd:pw@127.0.0.1:6379/0",
	}
}

func TestUnsafe(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		change map[string]string
		want   []string // the variables named, in order
	}{
		{"safe", nil, nil},
		{"no admin token disables admin", map[string]string{"NOTIFYD_ADMIN_TOKEN": ""}, nil},
		{"short admin token", map[string]string{"NOTIFYD_ADMIN_TOKEN": strings.Repeat("a", 31)}, []string{"NOTIFYD_ADMIN_TOKEN"}},
		{"short producer token", map[string]string{"NOTIFYD_PRODUCER_TOKENS": strings.Repeat("p", 40) + ",short"}, []string{"NOTIFYD_PRODUCER_TOKENS"}},
		{"no task key", map[string]string{"NOTIFYD_TASK_KEY": ""}, []string{"NOTIFYD_TASK_KEY"}},
		{"no secret keys", map[string]string{"NOTIFYD_SECRET_KEYS": ""}, []string{"NOTIFYD_SECRET_KEYS"}},
		{"private targets", map[string]string{"NOTIFYD_ALLOW_PRIVATE_TARGETS": "true"}, []string{"NOTIFYD_ALLOW_PRIVATE_TARGETS"}},
		{"private CIDR exception is deliberate", map[string]string{"NOTIFYD_ALLOW_PRIVATE_TARGETS": "10.1.0.0/16"}, nil},
		{"redis without password", map[string]string{"NOTIFYD_REDIS_URL": "redis://127.0.0.1:6379/0"}, []string{"NOTIFYD_REDIS_URL"}},
		{"redis user without password", map[string]string{"NOTIFYD_REDIS_URL": "redis://notifyd:@127.0.0.1:6379/0"}, []string{"NOTIFYD_REDIS_URL"}},
		{"redis password only", map[string]string{"NOTIFYD_REDIS_URL": "redis://:pw@127.0.0.1:6379/0"}, nil},
		{"sentinel with password", map[string]string{"NOTIFYD_REDIS_URL": "redis://:pw@s1:26379/0?master_name=m"}, nil},
		{"sentinel password parameter", map[string]string{"NOTIFYD_REDIS_URL": "redis://s1:26379/0?master_name=m&password=pw"}, nil},
		{"everything", map[string]string{"NOTIFYD_ADMIN_TOKEN": "t", "NOTIFYD_TASK_KEY": "", "NOTIFYD_SECRET_KEYS": "", "NOTIFYD_ALLOW_PRIVATE_TARGETS": "true",
			"NOTIFYD_REDIS_URL": "redis://127.0.0.1:6379/0"},
			[]string{"NOTIFYD_ADMIN_TOKEN", "NOTIFYD_TASK_KEY", "NOTIFYD_SECRET_KEYS", "NOTIFYD_ALLOW_PRIVATE_TARGETS", "NOTIFYD_REDIS_URL"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := safeEnv()
			for k, v := range tc.change {
				env[k] = v
			}
			c, err := Load("test", nil, func(k string) string { return env[k] }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if c.Env != EnvProduction {
				t.Fatalf("default NOTIFYD_ENV %q, want production", c.Env)
			}
			var named []string
			for _, u := range c.Unsafe() {
				named = append(named, strings.FieldsFunc(u, func(r rune) bool { return r == ' ' || r == '=' || r == ':' })[0])
			}
			if !slices.Equal(named, tc.want) {
				t.Fatalf("Unsafe() = %q, want settings %q", c.Unsafe(), tc.want)
			}
		})
	}
}

func TestEnvAndSecretKeysParse(t *testing.T) {
	t.Parallel()
	cases := []struct {
		env map[string]string
		err string
	}{
		{map[string]string{"NOTIFYD_ENV": "development"}, ""},
		{map[string]string{"NOTIFYD_ENV": "staging"}, "NOTIFYD_ENV"},
		{map[string]string{"NOTIFYD_SECRET_KEYS": "k1:short"}, "NOTIFYD_SECRET_KEYS"},
	}
	for _, tc := range cases {
		_, err := Load("test", nil, func(k string) string { return tc.env[k] }, io.Discard)
		if (tc.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%v: err %v, want %q", tc.env, err, tc.err)
		}
	}
}

// A developer's first receiver runs on their own machine: development
// reaches loopback unless NOTIFYD_ALLOW_PRIVATE_TARGETS says otherwise, and
// says so in Unsafe (logged as a warning at start); production never does.
// Every refusal tells how to allow the address.
func TestDevelopmentAllowsLoopbackUnlessTold(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name          string
		env, targets  string
		loopbackOK    bool
		warnsLoopback bool
	}{
		{"development, unset", EnvDevelopment, "", true, true},
		{"development, false", EnvDevelopment, "false", false, false},
		{"development, CIDR list", EnvDevelopment, "10.1.0.0/16", false, false},
		{"production, unset", EnvProduction, "", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := safeEnv()
			env["NOTIFYD_ENV"], env["NOTIFYD_ALLOW_PRIVATE_TARGETS"] = tc.env, tc.targets
			c, err := Load("test", nil, func(k string) string { return env[k] }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			for _, addr := range []string{"127.0.0.1", "::1"} {
				err := c.Targets.CheckAddr(netip.MustParseAddr(addr))
				if (err == nil) != tc.loopbackOK {
					t.Fatalf("CheckAddr(%s) = %v, want allowed %v", addr, err, tc.loopbackOK)
				}
				if err != nil && (!strings.Contains(err.Error(), addr+" is a loopback address") ||
					!strings.Contains(err.Error(), "set NOTIFYD_ALLOW_PRIVATE_TARGETS=true")) {
					t.Fatalf("refusal %q does not name the kind of address and the setting", err)
				}
			}
			if err := c.Targets.CheckAddr(netip.MustParseAddr("10.0.0.1")); err == nil || !strings.Contains(err.Error(), "private address") {
				t.Fatalf("CheckAddr(10.0.0.1) = %v, want a refusal naming a private address", err)
			}
			warns := slices.ContainsFunc(c.Unsafe(), func(u string) bool {
				return strings.HasPrefix(u, "NOTIFYD_ALLOW_PRIVATE_TARGETS is not set") && strings.Contains(u, "loopback")
			})
			if warns != tc.warnsLoopback {
				t.Fatalf("Unsafe() = %q, want the loopback warning %v", c.Unsafe(), tc.warnsLoopback)
			}
		})
	}
}
