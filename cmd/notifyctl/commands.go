package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/notifyd/notifyd/query/client"
)

const getSynopsis = "get <id> | get --key KEY [--receiver ID]"

// byKey lets a command that names one notification name it by its
// idempotency key instead of its id, as get does.
type byKey struct{ key, receiver string }

func (b *byKey) register(fs *flag.FlagSet) {
	fs.StringVar(&b.key, "key", "", "name the notification by its idempotency `key` instead of its id")
	fs.StringVar(&b.receiver, "receiver", "", "receiver `id` for --key (admin token only; a receiver key implies its own)")
}

// id parses fs and returns the notification's id: the one argument, or the
// id of the notification --key names, looked up through the API (which
// takes a receiver's API key, or the admin token with --receiver).
func (b *byKey) id(ctx context.Context, e *env, fs *flag.FlagSet, args []string) (string, error) {
	pos, err := parse(fs, args)
	if err != nil {
		return "", err
	}
	switch {
	case b.key == "" && len(pos) == 1 && pos[0] != "":
		return pos[0], nil
	case b.key != "" && len(pos) == 0:
		n, err := e.client().GetByKey(ctx, b.key, &client.GetByKeyOptions{ReceiverID: b.receiver})
		if err != nil {
			return "", err
		}
		return n.ID, nil
	}
	return "", usagef("want one notification id, or --key, got %d arguments", len(pos))
}

func runGet(ctx context.Context, e *env, args []string) error {
	fs := e.flags("get", getSynopsis)
	var b byKey
	b.register(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	var n *client.Notification
	switch {
	case b.key != "" && len(pos) == 0:
		n, err = e.client().GetByKey(ctx, b.key, &client.GetByKeyOptions{ReceiverID: b.receiver})
	case b.key == "" && len(pos) == 1:
		n, err = e.client().Get(ctx, pos[0])
	default:
		return usagef("want one notification id, or --key")
	}
	if err != nil {
		return err
	}
	if e.json {
		return writeJSON(e.stdout, n)
	}
	return printNotification(e.stdout, n, true)
}

func runList(ctx context.Context, e *env, args []string) error {
	fs := e.flags("list", "list [--status S] [--type T] [--key K] [--since T] [--until T] [--order asc|desc] [--limit N] [--all | --cursor C]")
	var p client.ListParams
	var since, until timeFlag
	fs.StringVar(&p.Status, "status", "", "only this `status` (pending, delivered, failed, cancelled)")
	fs.StringVar(&p.EventType, "type", "", "only this event `type`")
	fs.StringVar(&p.IdempotencyKey, "key", "", "only this idempotency `key`")
	fs.Var(&since, "since", "created at or after `T` (RFC 3339, 2006-01-02, or a duration ago like 2h)")
	fs.Var(&until, "until", "created before `T`")
	fs.StringVar(&p.Order, "order", "desc", "`asc` or desc by creation time")
	fs.IntVar(&p.Limit, "limit", 50, "page size, 1..500")
	fs.StringVar(&p.Cursor, "cursor", "", "continue from a previous listing's `cursor`")
	fs.StringVar(&p.ReceiverID, "receiver", "", "only this receiver `id` (admin token)")
	all := fs.Bool("all", false, "follow cursors through every page")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if p.Limit < 1 || p.Limit > 500 {
		return usagef("--limit must be 1..500")
	}
	p.CreatedAfter, p.CreatedBefore = since.t, until.t
	c := e.client()
	// The table (and its header) starts with the first row, so that an
	// empty listing says so instead of printing a bare header.
	var t *table
	rows := 0
	emit := func(n *client.Notification) error {
		rows++
		if e.json {
			return writeJSON(e.stdout, n)
		}
		if t == nil {
			t = newTable(e.stdout, "ID", "STATUS", "EVENT TYPE", "KEY", "ATTEMPTS", "CREATED", "LAST ERROR")
		}
		t.row(n.ID, n.Status, n.EventType, n.IdempotencyKey, fmt.Sprintf("%d/%d", n.Attempts, n.MaxAttempts),
			fmtTime(n.CreatedAt), truncate(n.LastError, 60))
		return nil
	}
	done := func() error {
		if rows == 0 && !e.json {
			_, err := fmt.Fprintln(e.stdout, "no notifications match")
			return err
		}
		return t.flush()
	}
	if *all {
		for n, err := range c.All(ctx, p) {
			if err != nil {
				t.flush()
				return err
			}
			if err := emit(n); err != nil {
				return err
			}
			// The table buffers until flushed: flush now and then so a long
			// listing streams (columns may widen from one block to the next).
			if rows%500 == 0 {
				if err := t.flush(); err != nil {
					return err
				}
			}
		}
		return done()
	}
	page, err := c.List(ctx, p)
	if err != nil {
		return err
	}
	for _, n := range page.Data {
		if err := emit(n); err != nil {
			return err
		}
	}
	if err := done(); err != nil {
		return err
	}
	if page.HasMore {
		fmt.Fprintf(e.stderr, "more: notifyctl list --cursor %s (same filters), or --all\n", page.NextCursor)
	}
	return nil
}

func runAttempts(ctx context.Context, e *env, args []string) error {
	fs := e.flags("attempts", "attempts <id> | attempts --key KEY [--receiver ID]")
	var b byKey
	b.register(fs)
	id, err := b.id(ctx, e, fs, args)
	if err != nil {
		return err
	}
	as, err := e.client().Attempts(ctx, id)
	if err != nil {
		return err
	}
	if e.json {
		return writeJSONLines(e.stdout, as)
	}
	if len(as) == 0 {
		_, err := fmt.Fprintln(e.stdout, "no attempts yet")
		return err
	}
	return printAttempts(e.stdout, as)
}

func runRedeliver(ctx context.Context, e *env, args []string) error {
	fs := e.flags("redeliver", "redeliver <id> | redeliver --key KEY [--receiver ID]")
	var b byKey
	b.register(fs)
	id, err := b.id(ctx, e, fs, args)
	if err != nil {
		return err
	}
	r, err := e.client().Redeliver(ctx, id)
	if err != nil {
		return err
	}
	if e.json {
		return writeJSON(e.stdout, r)
	}
	_, err = fmt.Fprintf(e.stdout, "queued redelivery %d of %s (recorded as attempt %d)\n", r.Redelivery, r.ID, -r.Redelivery)
	return err
}

func runRecover(ctx context.Context, e *env, args []string) error {
	fs := e.flags("recover", "recover --since T [--until T] [--receiver ID]")
	var since, until timeFlag
	fs.Var(&since, "since", "failed notifications created at or after `T` (RFC 3339, 2006-01-02, or a duration ago like 6h); required")
	fs.Var(&until, "until", "… and created before `T` (default now)")
	receiver := fs.String("receiver", "", "receiver `id`; with a receiver API key it defaults to the key's own receiver")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if since.t.IsZero() {
		return usagef("--since is required")
	}
	if !until.t.IsZero() && !until.t.After(since.t) {
		return usagef("--until must be after --since")
	}
	c := e.client()
	id := *receiver
	if id == "" {
		if id, err = ownReceiver(ctx, c, e.token); err != nil {
			return err
		}
		if id == "" {
			// A receiver without a single notification has nothing to recover.
			return report(e, map[string]int{"recovered": 0}, "recovered 0 failed notifications (this receiver has none)")
		}
	}
	n, err := c.Recover(ctx, id, since.t, until.t)
	if err != nil {
		return err
	}
	return report(e, map[string]int{"recovered": n},
		fmt.Sprintf("recovered %d failed notifications of receiver %s: each gets one more attempt now", n, id))
}

// ownReceiver finds the receiver a receiver API key belongs to: the API has
// no "who am I", but every notification it lists is its own. It returns ""
// when the receiver has no notifications.
func ownReceiver(ctx context.Context, c *client.Client, token string) (string, error) {
	if !strings.HasPrefix(token, "nfy_") {
		return "", usagef("--receiver is required unless the token is a receiver API key (nfy_…)")
	}
	page, err := c.List(ctx, client.ListParams{Limit: 1})
	if err != nil {
		return "", err
	}
	if len(page.Data) == 0 {
		return "", nil
	}
	return page.Data[0].ReceiverID, nil
}

func runCancel(ctx context.Context, e *env, args []string) error {
	// --key looks the notification up, which producer tokens may not do:
	// with one, cancel by id (send printed it).
	fs := e.flags("cancel", "cancel <id> | cancel --key KEY --receiver ID (admin token)")
	var b byKey
	b.register(fs)
	id, err := b.id(ctx, e, fs, args)
	if err != nil {
		return err
	}
	n, err := e.client().Cancel(ctx, id)
	if err != nil {
		return err
	}
	if e.json {
		return writeJSON(e.stdout, n)
	}
	return printNotification(e.stdout, n, false)
}

func runSend(ctx context.Context, e *env, args []string) error {
	fs := e.flags("send", "send --receiver ID --type TYPE --key KEY --payload JSON|@FILE|- [--callback-url URL]\n"+
		"       notifyctl send --file FILE|-    (many: a JSON array of notifications, or one JSON object per line)")
	var n client.NewNotification
	fs.StringVar(&n.ReceiverID, "receiver", "", "receiver `id` (required)")
	fs.StringVar(&n.EventType, "type", "", "event `type`, like trade.paid (required)")
	fs.StringVar(&n.IdempotencyKey, "key", "", "idempotency `key`: sending the same key again is a no-op (required)")
	fs.StringVar(&n.CallbackURL, "callback-url", "", "deliver to this `URL` instead of the receiver's")
	payload := fs.String("payload", "", "JSON payload: inline `JSON`, @file, or - for stdin (required)")
	file := fs.String("file", "", "send the notifications in `FILE` (- for stdin) through the batch endpoint, 500 a request, instead of one from the flags")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if *file != "" {
		if n.ReceiverID+n.EventType+n.IdempotencyKey+n.CallbackURL+*payload != "" {
			return usagef("--file takes the notifications from the file: no --receiver, --type, --key, --payload or --callback-url")
		}
		return sendFile(ctx, e, *file)
	}
	for _, req := range []struct{ flag, v string }{
		{"--receiver", n.ReceiverID}, {"--type", n.EventType}, {"--key", n.IdempotencyKey}, {"--payload", *payload},
	} {
		if req.v == "" {
			return usagef("%s is required", req.flag)
		}
	}
	raw, err := readPayload(*payload)
	if err != nil {
		return err
	}
	n.Payload = raw
	a, err := e.client().Send(ctx, n)
	if err != nil {
		return err
	}
	if e.json {
		return writeJSON(e.stdout, map[string]any{"id": a.ID, "status": a.Status, "replayed": a.Replayed})
	}
	msg := fmt.Sprintf("accepted %s (status %s)", a.ID, a.Status)
	if a.Replayed {
		msg += "; already sent with this key, nothing new queued"
	}
	_, err = fmt.Fprintln(e.stdout, msg)
	return err
}

// maxPayloadFile bounds what send reads from a file or stdin; the server's
// own limit is lower and answers with a clear error.
const maxPayloadFile = 8 << 20

func readPayload(arg string) (json.RawMessage, error) {
	var raw []byte
	var err error
	switch {
	case arg == "-":
		raw, err = io.ReadAll(io.LimitReader(os.Stdin, maxPayloadFile))
	case strings.HasPrefix(arg, "@"):
		var f *os.File
		if f, err = os.Open(arg[1:]); err == nil {
			raw, err = io.ReadAll(io.LimitReader(f, maxPayloadFile))
			f.Close()
		}
	default:
		raw = []byte(arg)
	}
	if err != nil {
		return nil, fmt.Errorf("read payload: %w", err)
	}
	raw = bytes.TrimSpace(raw)
	if !json.Valid(raw) {
		return nil, usagef("--payload is not valid JSON")
	}
	return raw, nil
}

// report prints v as JSON with --json, else the text line.
func report(e *env, v any, text string) error {
	if e.json {
		return writeJSON(e.stdout, v)
	}
	_, err := fmt.Fprintln(e.stdout, text)
	return err
}

// printNotification prints the fields that are set, one per line, and the
// attempts as a table when withAttempts.
func printNotification(w io.Writer, n *client.Notification, withAttempts bool) error {
	t := newTable(w)
	t.row("id", n.ID)
	t.row("receiver", n.ReceiverID)
	t.row("event type", n.EventType)
	t.row("idempotency key", n.IdempotencyKey)
	t.row("status", n.Status)
	t.row("attempts", fmt.Sprintf("%d of %d", n.Attempts, n.MaxAttempts))
	t.row("created", fmtTime(n.CreatedAt))
	t.optTime("next attempt", n.NextAttemptAt)
	t.optTime("last attempt", n.LastAttemptAt)
	t.optTime("delivered", n.DeliveredAt)
	if n.LastStatusCode != nil {
		t.row("last status", fmt.Sprint(*n.LastStatusCode))
	}
	if n.LastError != "" {
		t.row("last error", n.LastError)
	}
	if n.CallbackURL != "" {
		t.row("callback url", n.CallbackURL)
	}
	t.row("payload", truncate(string(n.Payload), 200))
	if err := t.flush(); err != nil {
		return err
	}
	if !withAttempts || len(n.DeliveryAttempts) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	return printAttempts(w, n.DeliveryAttempts)
}

func printAttempts(w io.Writer, as []client.Attempt) error {
	t := newTable(w, "ATTEMPT", "STARTED", "DURATION", "HTTP", "OUTCOME", "ERROR", "RESPONSE")
	for _, a := range as {
		no := fmt.Sprint(a.Attempt)
		if a.Manual {
			no = fmt.Sprintf("manual %d", -a.Attempt)
		}
		code := "-"
		if a.StatusCode != 0 {
			code = fmt.Sprint(a.StatusCode)
		}
		t.row(no, fmtTime(a.StartedAt), a.Duration().String(), code, a.Outcome, truncate(a.Error, 60), truncate(a.ResponseBody, 40))
	}
	return t.flush()
}
