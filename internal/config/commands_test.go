package config

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

// Every flag has a type and its commands; a setting added without them
// would be missing from every command's flags.
func TestEveryFlagHasInfo(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	define(fs, func(string) string { return "" }, &Config{}, &rawSettings{})
	seen := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) {
		seen[f.Name] = true
		info, ok := flagInfos[f.Name]
		if !ok || info.kind == "" || len(info.commands) == 0 {
			t.Errorf("flag -%s has no type or commands in flagInfos", f.Name)
		}
		if strings.Contains(f.Usage, "`") {
			t.Errorf("flag -%s: a back-quoted word in its usage would be shown as its type", f.Name)
		}
	})
	for name := range flagInfos {
		if !seen[name] {
			t.Errorf("flagInfos lists -%s, which define does not declare", name)
		}
	}
}

// TestLoadCommandHelp: each command's -h lists its own flags, each with its
// type and built-in default, and never a value from the environment.
func TestLoadCommandHelp(t *testing.T) {
	t.Parallel()
	env := map[string]string{"NOTIFYD_ADMIN_TOKEN": "very-secret-admin-token", "NOTIFYD_DATABASE_URL": "postgres://u:hunter2@db/x"}
	tests := []struct {
		command   string
		want, not []string
	}{
		{CmdWorker, []string{"-worker-concurrency int\n", "(NOTIFYD_WORKER_CONCURRENCY; default 100)", "-delivery-timeout duration\n",
			"-database-url URL\n", "-ops-addr address\n", "-retry-factor float\n"},
			[]string{"-http-addr", "-admin-token", "-no-migrate", "-outbox-table", "-rate-limit-admin", "-redrive-schedule"}},
		{CmdAPI, []string{"-http-addr address\n", "-admin-token token\n", "-rate-limit-admin rate/burst\n", "default 10000/20000"},
			[]string{"-worker-concurrency", "-no-migrate", "-outbox-database-url", "-retention-schedule"}},
		{CmdAll, []string{"-no-migrate\n", "notifyd all does not apply migrations", "-http-addr", "-worker-concurrency", "-redrive-schedule schedule\n"},
			[]string{"-outbox-database-url", "-no-migrate all"}},
		{CmdRelay, []string{"-outbox-database-url URL\n", "-ops-addr address\n", "-relay-replica-ack int\n"},
			[]string{"-http-addr", "-worker-concurrency", "-admin-token", "-no-migrate"}},
		{CmdMigrate, []string{"-database-url URL\n", "-secret-keys keys\n"},
			[]string{"-redis-url", "-http-addr", "-ops-addr"}},
		{CmdScheduler, []string{"-retention duration\n", "-summary-schedule schedule\n", "default 0 0 * * *"},
			[]string{"-http-addr", "-worker-concurrency"}},
	}
	for _, tt := range tests {
		t.Run(tt.command, func(t *testing.T) {
			t.Parallel()
			var help bytes.Buffer
			_, err := LoadCommand(tt.command, []string{"-h"}, func(k string) string { return env[k] }, &help)
			if !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("err = %v, want flag.ErrHelp", err)
			}
			out := help.String()
			if !strings.HasPrefix(out, "usage: notifyd "+tt.command+" [flags]") {
				t.Errorf("help does not start with the usage line:\n%s", out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("help lacks %q:\n%s", w, out)
				}
			}
			for _, n := range append(tt.not, "very-secret", "hunter2", " string\n", " value\n") {
				if strings.Contains(out, n) {
					t.Errorf("help contains %q:\n%s", n, out)
				}
			}
		})
	}
}

func TestLoadCommand(t *testing.T) {
	t.Parallel()
	none := func(string) string { return "" }
	tests := []struct {
		name    string
		command string
		args    []string
		env     map[string]string
		check   func(c *Config) bool
		wantErr string
	}{
		{name: "bare bool flag", command: CmdAll, args: []string{"-no-migrate"}, check: func(c *Config) bool { return c.NoMigrate }},
		{name: "bool flag with value", command: CmdAll, args: []string{"-no-migrate=false"}, env: map[string]string{"NOTIFYD_NO_MIGRATE": "true"},
			check: func(c *Config) bool { return !c.NoMigrate }},
		{name: "typed flag", command: CmdWorker, args: []string{"-worker-concurrency", "7"}, check: func(c *Config) bool { return c.WorkerConcurrency == 7 }},
		{name: "another command's flag", command: CmdMigrate, args: []string{"-http-addr", ":1"}, wantErr: "flag provided but not defined: -http-addr"},
		{name: "another command's variable is still read", command: CmdWorker, env: map[string]string{"NOTIFYD_ADMIN_TOKEN": "x"},
			check: func(c *Config) bool { return c.AdminToken == "x" }},
		{name: "bad value named by variable", command: CmdWorker, args: []string{"-worker-concurrency", "many"}, wantErr: "NOTIFYD_WORKER_CONCURRENCY"},
		{name: "stray argument", command: CmdAPI, args: []string{"extra"}, wantErr: `unexpected argument "extra"`},
		{name: "unknown command", command: "frob", wantErr: `unknown command "frob"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := none
			if tt.env != nil {
				env = func(k string) string { return tt.env[k] }
			}
			c, err := LoadCommand(tt.command, tt.args, env, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Errorf("unexpected config %+v", c)
			}
		})
	}
}
