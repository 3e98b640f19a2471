// Command notifyctl is the command-line client of notifyd's HTTP API: look up
// notifications and their delivery attempts, redeliver, recover, cancel,
// send, reconcile a receiver's notifications into a local handler, and
// forward a pull receiver's event stream to a local URL (listen).
//
// It talks to notifyd only through the HTTP API (query/client), never to
// Postgres or Redis directly, so it needs no more access than a receiver.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/notifyd/notifyd/internal/buildinfo"
	"github.com/notifyd/notifyd/query/client"
)

const usage = `notifyctl: command-line client for the notifyd API

Usage: notifyctl [global flags] <command> [flags] [args]

Notifications (a receiver's API key, or the admin token):
  get <id>          a notification with its delivery attempts (or --key KEY)
  list              notifications, newest first (filters: notifyctl list -h)
  attempts <id>     a notification's delivery attempts (or --key KEY)
  redeliver <id>    send a notification once more, whatever its status (or --key KEY)
  recover           give failed notifications of a time range one more attempt
  reconcile         page through all notifications into a handler, with a checkpoint
Producers (a producer token, or the admin token):
  send              hand in a notification
  cancel <id>       stop delivering a pending notification (or --key KEY with the admin token)
Operators (the admin token):
  receivers         create | get | list | update | rotate-secret | deactivate | activate
  api-keys          create | list | revoke: a receiver's API keys
  producers         create | list | delete: producer records and their tokens
Pull receivers (a receiver's API key):
  listen            forward the event stream to a local URL, acking each
  ack <id>...       acknowledge notifications as processed
Receivers (its API key, or the admin token with an id):
  receiver [id]     a receiver and its health: active, failing or disabled (and why)
  enable [id]       take a disabled receiver back (then recover what failed meanwhile)
Other:
  receiver-schema   print the DDL of the receiver's de-duplication table
  version           print the version (also --version)

Each command's own flags: notifyctl <command> -h.

Global flags (also accepted after the command):
  --url URL         API base URL (env NOTIFYD_URL, default http://127.0.0.1:8080)
  --token TOKEN     receiver API key, admin or producer token (env NOTIFYD_TOKEN)
  -o json|table     output format: JSON lines, or aligned text (the default)
  --json            the same as -o json
  --timeout D       per-request timeout (default 30s)

Times (--since, --until) are RFC 3339 (2026-12-02T10:00:00Z), a date
(2026-12-02, midnight UTC; the API takes both too) or a duration ago (2h).

Exit status: 0 success, 1 the API or a handler refused or failed, 2 usage error.
`

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// globals are the flags every command takes.
type globals struct {
	url     string
	token   string
	json    bool
	timeout time.Duration
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.url, "url", g.url, "API base `URL` (env NOTIFYD_URL)")
	fs.Var((*secret)(&g.token), "token", "bearer `token` (env NOTIFYD_TOKEN)")
	fs.BoolVar(&g.json, "json", g.json, "print JSON lines")
	fs.Var((*outputFlag)(&g.json), "o", "output `format`: json or table")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "per-request `timeout`")
}

// globalFlags are the names register defines: a command's -h leaves them
// out and points to notifyctl -h instead.
var globalFlags = []string{"url", "token", "json", "o", "timeout"}

// outputFlag is -o: "json" is --json, "table" the aligned text.
type outputFlag bool

func (o *outputFlag) String() string {
	if o != nil && *o {
		return "json"
	}
	return "table"
}

func (o *outputFlag) Set(v string) error {
	switch v {
	case "json":
		*o = true
	case "table":
		*o = false
	default:
		return fmt.Errorf("must be json or table")
	}
	return nil
}

// secret is a string flag whose value never appears in -h output, where
// the default would otherwise show the token taken from the environment.
type secret string

func (s *secret) String() string     { return "" }
func (s *secret) Set(v string) error { *s = secret(v); return nil }

func (g *globals) client() *client.Client {
	return client.New(g.url, g.token,
		client.WithHTTPClient(&http.Client{Timeout: g.timeout}),
		client.WithUserAgent("notifyctl/"+buildinfo.Version))
}

// env is one invocation: its globals and output streams.
type env struct {
	globals
	stdout, stderr io.Writer
}

// usageError is a mistake on the command line (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

type command struct {
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

// groups are the commands made of subcommands: "receivers create …".
var groups = map[string]map[string]command{
	"receivers": receiverCommands,
	"api-keys":  apiKeyCommands,
	"producers": producerCommands,
}

var commands map[string]command

func init() {
	commands = map[string]command{
		"get":             {getSynopsis, runGet},
		"list":            {"list [filters]", runList},
		"attempts":        {"attempts <id> | attempts --key KEY [--receiver ID]", runAttempts},
		"redeliver":       {"redeliver <id> | redeliver --key KEY [--receiver ID]", runRedeliver},
		"recover":         {"recover --since T [--until T] [--receiver ID]", runRecover},
		"cancel":          {"cancel <id> | cancel --key KEY --receiver ID", runCancel},
		"send":            {"send --receiver ID --type TYPE --key KEY --payload JSON|@FILE|-, or --file FILE (many)", runSend},
		"reconcile":       {"reconcile --checkpoint FILE [--handler-url URL] [--status S] [--since T]", runReconcile},
		"receiver-schema": {"receiver-schema [--table NAME]", runReceiverSchema},
		"listen":          {"listen --forward URL [--last-event-id ID]", runListen},
		"ack":             {"ack <id>...", runAck},
		"receiver":        {"receiver [id]", runReceiver},
		"enable":          {"enable [id]", runEnable},
	}
}

// run is main without the process: testable in-process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr, globals: globals{
		url: "http://127.0.0.1:8080", token: os.Getenv("NOTIFYD_TOKEN"), timeout: 30 * time.Second,
	}}
	if u := os.Getenv("NOTIFYD_URL"); u != "" {
		e.url = u
	}
	top := flag.NewFlagSet("notifyctl", flag.ContinueOnError)
	top.SetOutput(io.Discard)
	e.register(top)
	version := top.Bool("version", false, "print the version")
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return exitOK
		}
		fmt.Fprintf(stderr, "notifyctl: %v\n\n%s", err, usage)
		return exitUsage
	}
	args = top.Args()
	if *version {
		fmt.Fprintln(stdout, "notifyctl", buildinfo.Version)
		return exitOK
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	name, args := args[0], args[1:]
	switch name {
	case "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	case "version":
		fmt.Fprintln(stdout, "notifyctl", buildinfo.Version)
		return exitOK
	}
	cmd, ok := commands[name]
	if group, isGroup := groups[name]; isGroup {
		if name, cmd, args, ok = subcommand(name, group, args, stdout, stderr); !ok {
			return exitUsage
		} else if cmd.run == nil {
			return exitOK // the group's help
		}
	}
	if !ok {
		fmt.Fprintf(stderr, "notifyctl: unknown command %q\n\n%s", name, usage)
		return exitUsage
	}
	err := cmd.run(ctx, e, args)
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "notifyctl %s: %s\nusage: notifyctl %s (see notifyctl %s -h)\n", name, ue.msg, cmd.summary, name)
		return exitUsage
	}
	fmt.Fprintf(stderr, "notifyctl %s: %s\n", name, describe(err))
	return exitFail
}

// describe renders an error for people: the API's code and message first.
func describe(err error) string {
	var ae *client.APIError
	if errors.As(err, &ae) {
		msg := fmt.Sprintf("%s (HTTP %d): %s", ae.Code, ae.StatusCode, ae.Message)
		if ae.Field != "" && !strings.Contains(ae.Message, ae.Field) {
			msg += " [field " + ae.Field + "]"
		}
		switch ae.StatusCode {
		case http.StatusUnauthorized:
			msg += "\nhint: pass --token or set NOTIFYD_TOKEN"
		case http.StatusForbidden:
			msg += "\nhint: this token may not do this; receiver keys read, producer tokens send and cancel"
		}
		return msg
	}
	return err.Error()
}

// subcommand picks a group's subcommand from args: "receivers create …"
// runs as the command "receivers create". Without one, or with -h, it
// prints the group's subcommands (ok with a nil run: help, exit 0).
func subcommand(name string, group map[string]command, args []string, stdout, stderr io.Writer) (string, command, []string, bool) {
	list := func(w io.Writer) {
		fmt.Fprintf(w, "usage: notifyctl %s <subcommand> [flags] [args]\n\nSubcommands:\n", name)
		for _, n := range slices.Sorted(maps.Keys(group)) {
			fmt.Fprintf(w, "  notifyctl %s\n", group[n].summary)
		}
		fmt.Fprintf(w, "\nEach subcommand's flags: notifyctl %s <subcommand> -h\n", name)
	}
	if len(args) == 0 {
		fmt.Fprintf(stderr, "notifyctl %s: want a subcommand\n", name)
		list(stderr)
		return "", command{}, nil, false
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		list(stdout)
		return name, command{}, nil, true
	}
	sub, ok := group[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "notifyctl %s: unknown subcommand %q\n", name, args[0])
		list(stderr)
		return "", command{}, nil, false
	}
	return name + " " + args[0], sub, args[1:], true
}

// flags builds a command's flag set. It accepts the global flags too, but
// its -h lists only the command's own (on stdout, exit 0).
func (e *env) flags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("notifyctl "+name, flag.ContinueOnError)
	fs.SetOutput(e.stdout)
	e.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: notifyctl %s\n\n", synopsis)
		if hasOwnFlags(fs) {
			fmt.Fprintln(fs.Output(), "Flags:")
		}
		printFlags(fs)
	}
	return fs
}

func hasOwnFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		if !slices.Contains(globalFlags, f.Name) {
			n++
		}
	})
	return n > 0
}

// printFlags prints a command's own flags, leaving out the global ones.
func printFlags(fs *flag.FlagSet) {
	own := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	own.SetOutput(fs.Output())
	fs.VisitAll(func(f *flag.Flag) {
		if !slices.Contains(globalFlags, f.Name) {
			own.Var(f.Value, f.Name, f.Usage)
		}
	})
	if hasOwnFlags(fs) {
		own.PrintDefaults()
		fmt.Fprintln(fs.Output())
	}
	fmt.Fprintln(fs.Output(), "Global flags (--url, --token, -o json|table, --json, --timeout) are accepted too: notifyctl -h")
}

// parse parses flags and positional arguments in any order ("get ID --json"
// as well as "get --json ID"). A mistake is returned, not printed: run
// prints it once, with the synopsis; -h prints the usage.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	out := fs.Output()
	fs.SetOutput(io.Discard)
	defer fs.SetOutput(out)
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(out)
				fs.Usage()
				return nil, err
			}
			return nil, usagef("%v", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// parseTime reads RFC 3339 ("2026-03-01T10:00:00Z"), a date ("2026-03-01",
// UTC midnight), or a duration back from now ("2h", "90m").
func parseTime(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time, a date (2006-01-02) or a duration ago (2h)", s)
}

// timeFlag is a flag.Value for parseTime.
type timeFlag struct{ t time.Time }

func (f *timeFlag) String() string {
	if f == nil || f.t.IsZero() {
		return ""
	}
	return f.t.Format(time.RFC3339Nano)
}

func (f *timeFlag) Set(s string) error {
	t, err := parseTime(s, time.Now())
	if err != nil {
		return err
	}
	f.t = t
	return nil
}
