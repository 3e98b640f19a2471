package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/notifyd/notifyd/query/client"
)

// The receiver commands' synopses.
const (
	synReceiverCreate = "receivers create --name NAME --callback-url URL [--delivery-timeout D] [--success-body S] [--retry JSON] [--callback-hosts H,…|none]"
	synReceiverUpdate = "receivers update <receiver-id> [--name …] [--callback-url …] [--delivery-timeout …] [--success-body …] [--retry …] [--callback-hosts …] [--reset FIELD,…]"
	synReceiverRotate = "receivers rotate-secret <receiver-id> [--grace D]"
)

// receiverCommands are the operator's receiver commands (admin token):
// `notifyctl receivers <subcommand>`.
var receiverCommands = map[string]command{
	"create":        {summary: synReceiverCreate, run: runReceiverCreate},
	"get":           {summary: "receivers get <receiver-id>", run: runReceiverGet},
	"list":          {summary: "receivers list", run: runReceiverList},
	"update":        {summary: synReceiverUpdate, run: runReceiverUpdate},
	"rotate-secret": {summary: synReceiverRotate, run: runReceiverRotate},
	"deactivate":    {summary: "receivers deactivate <receiver-id>", run: runReceiverActive(false)},
	"activate":      {summary: "receivers activate <receiver-id>", run: runReceiverActive(true)},
}

// settingFlags are the receiver settings create and update take. Each
// records whether it was given, so update sends only those.
type settingFlags struct {
	name, callbackURL, timeout, successBody, retry, hosts optString
	reset                                                 string
}

// optString is a string flag that knows whether it was set.
type optString struct {
	v   string
	set bool
}

func (o *optString) String() string     { return o.v }
func (o *optString) Set(v string) error { o.v, o.set = v, true; return nil }

// resettable are the settings --reset puts back to the service default.
var resettable = []string{"delivery-timeout", "success-body", "retry", "callback-hosts"}

func (f *settingFlags) register(fs *flag.FlagSet, update bool) {
	fs.Var(&f.name, "name", "receiver `name`, for people")
	fs.Var(&f.callbackURL, "callback-url", "`URL` notifyd POSTs notifications to")
	fs.Var(&f.timeout, "delivery-timeout", "`duration` of one delivery attempt, 100ms..30s (default: the service's)")
	fs.Var(&f.successBody, "success-body", "a 2xx counts only if its trimmed body is exactly this `word` (Alipay style)")
	fs.Var(&f.retry, "retry", `retry policy override as `+"`JSON`"+`, like {"max_attempts":5} or {"intervals":["15s","1m"]}`)
	fs.Var(&f.hosts, "callback-hosts", "comma-separated `hosts` (or *.domain) a notification's callback_url may name; none: no override")
	if update {
		fs.StringVar(&f.reset, "reset", "", "comma-separated `settings` to put back to the default: "+strings.Join(resettable, ", "))
	}
}

// settings turns the flags given into the API's body.
func (f *settingFlags) settings() (client.ReceiverSettings, error) {
	var s client.ReceiverSettings
	if f.name.set {
		s.Name = &f.name.v
	}
	if f.callbackURL.set {
		s.CallbackURL = &f.callbackURL.v
	}
	if f.timeout.set {
		d, err := time.ParseDuration(f.timeout.v)
		if err != nil {
			return s, usagef("--delivery-timeout: %q is not a duration like 5s", f.timeout.v)
		}
		s.Timeout, _ = json.Marshal(d.String())
	}
	if f.successBody.set {
		s.SuccessBody, _ = json.Marshal(f.successBody.v)
	}
	if f.retry.set {
		if !json.Valid([]byte(f.retry.v)) {
			return s, usagef("--retry is not valid JSON")
		}
		s.Retry = json.RawMessage(f.retry.v)
	}
	if f.hosts.set {
		hosts := []string{}
		if f.hosts.v != "none" {
			for h := range strings.SplitSeq(f.hosts.v, ",") {
				if h = strings.TrimSpace(h); h != "" {
					hosts = append(hosts, h)
				}
			}
		}
		s.CallbackHosts, _ = json.Marshal(hosts)
	}
	return s, f.applyReset(&s)
}

func (f *settingFlags) applyReset(s *client.ReceiverSettings) error {
	if f.reset == "" {
		return nil
	}
	for field := range strings.SplitSeq(f.reset, ",") {
		field = strings.TrimSpace(field)
		target := map[string]*json.RawMessage{"delivery-timeout": &s.Timeout, "success-body": &s.SuccessBody,
			"retry": &s.Retry, "callback-hosts": &s.CallbackHosts}[field]
		if target == nil {
			return usagef("--reset: %q is not one of %s", field, strings.Join(resettable, ", "))
		}
		if *target != nil {
			return usagef("--%s and --reset %s contradict each other", field, field)
		}
		*target = client.Null
	}
	return nil
}

func runReceiverCreate(ctx context.Context, e *env, args []string) error {
	fs := e.flags("receivers create", synReceiverCreate)
	var f settingFlags
	f.register(fs, false)
	if err := noArgs(fs, args); err != nil {
		return err
	}
	if !f.name.set || !f.callbackURL.set {
		return usagef("--name and --callback-url are required")
	}
	s, err := f.settings()
	if err != nil {
		return err
	}
	r, err := e.client().CreateReceiver(ctx, s)
	if err != nil {
		return err
	}
	if e.json {
		return writeJSON(e.stdout, r)
	}
	if err := printReceiver(e.stdout, &r.Receiver); err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "\nShown only now; keep them safe:\n  api key         %s\n  signing secret  %s\n", r.APIKey, r.SigningSecret)
	return err
}

func runReceiverGet(ctx context.Context, e *env, args []string) error {
	id, err := oneReceiver(e.flags("receivers get", "receivers get <receiver-id>"), args)
	if err != nil {
		return err
	}
	return e.showReceiver(e.client().GetReceiver(ctx, id))
}

func runReceiverList(ctx context.Context, e *env, args []string) error {
	fs := e.flags("receivers list", "receivers list")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	var t *table
	n := 0
	for r, err := range e.client().AllReceivers(ctx, 500) {
		if err != nil {
			t.flush()
			return err
		}
		n++
		if e.json {
			if err := writeJSON(e.stdout, r); err != nil {
				return err
			}
			continue
		}
		if t == nil {
			t = newTable(e.stdout, "ID", "NAME", "ACTIVE", "CALLBACK URL", "CREATED")
		}
		t.row(r.ID, truncate(r.Name, 40), fmt.Sprint(r.Active), truncate(r.CallbackURL, 60), fmtTime(r.CreatedAt))
	}
	if n == 0 && !e.json {
		_, err := fmt.Fprintln(e.stdout, "no receivers yet (notifyctl receivers create)")
		return err
	}
	return t.flush()
}

func runReceiverUpdate(ctx context.Context, e *env, args []string) error {
	fs := e.flags("receivers update", synReceiverUpdate)
	var f settingFlags
	f.register(fs, true)
	id, err := oneReceiver(fs, args)
	if err != nil {
		return err
	}
	s, err := f.settings()
	if err != nil {
		return err
	}
	if raw, _ := json.Marshal(s); string(raw) == "{}" {
		return usagef("nothing to change: give at least one setting or --reset")
	}
	return updated(ctx, e, id, s)
}

// runReceiverActive deactivates (new notifications refused, pending ones
// still delivered) or activates a receiver.
func runReceiverActive(active bool) func(context.Context, *env, []string) error {
	name := map[bool]string{true: "activate", false: "deactivate"}[active]
	return func(ctx context.Context, e *env, args []string) error {
		id, err := oneReceiver(e.flags("receivers "+name, "receivers "+name+" <receiver-id>"), args)
		if err != nil {
			return err
		}
		return updated(ctx, e, id, client.ReceiverSettings{Active: &active})
	}
}

func updated(ctx context.Context, e *env, id string, s client.ReceiverSettings) error {
	return e.showReceiver(e.client().UpdateReceiver(ctx, id, s))
}

// showReceiver prints the receiver a call answered with, or returns its error.
func (e *env) showReceiver(r *client.Receiver, err error) error {
	if err != nil {
		return err
	}
	if e.json {
		return writeJSON(e.stdout, r)
	}
	return printReceiver(e.stdout, r)
}

func runReceiverRotate(ctx context.Context, e *env, args []string) error {
	fs := e.flags("receivers rotate-secret", synReceiverRotate)
	grace := fs.Duration("grace", 0, "how long the old secret keeps signing too, up to 168h (default: the service's, 24h)")
	id, err := oneReceiver(fs, args)
	if err != nil {
		return err
	}
	r, err := e.client().RotateSecret(ctx, id, *grace)
	if err != nil {
		return err
	}
	if e.json {
		return writeJSON(e.stdout, map[string]any{"id": r.ID, "signing_secret": r.SigningSecret,
			"previous_secret_expires_at": r.PreviousSecretExpiresAt})
	}
	until := "now"
	if r.PreviousSecretExpiresAt != nil {
		until = fmtTime(*r.PreviousSecretExpiresAt)
	}
	_, err = fmt.Fprintf(e.stdout, "new signing secret of %s (shown only now): %s\nthe old one keeps signing too until %s\n",
		r.ID, r.SigningSecret, until)
	return err
}

// oneReceiver parses a command that takes exactly one receiver id.
func oneReceiver(fs *flag.FlagSet, args []string) (string, error) {
	pos, err := parse(fs, args)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 || pos[0] == "" {
		return "", usagef("want exactly one receiver id, got %d arguments", len(pos))
	}
	return pos[0], nil
}

// noArgs parses a command that takes flags only.
func noArgs(fs *flag.FlagSet, args []string) error {
	pos, err := parse(fs, args)
	if err == nil && len(pos) > 0 {
		err = usagef("unexpected argument %q", pos[0])
	}
	return err
}

func printReceiver(w io.Writer, r *client.Receiver) error {
	t := newTable(w)
	t.row("id", r.ID)
	t.row("name", r.Name)
	t.row("callback url", r.CallbackURL)
	t.row("delivery", cmp.Or(r.Delivery, "push"))
	t.row("active", fmt.Sprint(r.Active))
	t.row("status", r.Status)
	t.optTime("status since", r.StatusChangedAt)
	t.optTime("failing since", r.FailingSince)
	t.optTime("last success", r.LastSuccessAt)
	t.optTime("disabled at", r.DisabledAt)
	if r.DisabledReason != "" {
		t.row("disabled because", r.DisabledReason)
	}
	if r.StatusCallbackURL != "" {
		t.row("status callback url", r.StatusCallbackURL)
	}
	t.row("timeout", cmp.Or(r.Timeout, "default"))
	if r.SuccessBody != nil {
		t.row("success body", *r.SuccessBody)
	}
	switch {
	case r.CallbackHosts == nil:
		t.row("callback hosts", "any (overrides unrestricted)")
	case len(r.CallbackHosts) == 0:
		t.row("callback hosts", "none (no override allowed)")
	default:
		t.row("callback hosts", strings.Join(r.CallbackHosts, ", "))
	}
	if len(r.Retry) > 0 && string(r.Retry) != "null" {
		t.row("retry override", string(r.Retry))
	}
	t.row("effective retry", string(r.EffectiveRetry))
	t.row("created", fmtTime(r.CreatedAt))
	t.row("updated", fmtTime(r.UpdatedAt))
	return t.flush()
}
