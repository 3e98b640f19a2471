package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/notifyd/notifyd/internal/buildinfo"
	"github.com/notifyd/notifyd/query/client"
	"github.com/notifyd/notifyd/query/webhook"
)

const reconcileHelp = `usage: notifyctl reconcile --checkpoint FILE [--handler-url URL] [--status S,…] [--since T] [--overlap D]

Hands every notification of the receiver to a local handler, oldest first,
and remembers in FILE how far it got. Use it to catch up after an outage of
the receiver's callback endpoint, or run it from cron as a safety net beside
the pushed callbacks:

  */5 * * * * notifyctl reconcile --checkpoint /var/lib/merchant/notifyd.ckpt --handler-url http://127.0.0.1:9000/notifyd

(with NOTIFYD_URL, NOTIFYD_TOKEN=nfy_… and NOTIFYD_SIGNING_SECRET=whsec_… in
the crontab's environment).

Each notification is POSTed to --handler-url exactly as a callback carries
it: the same JSON envelope (id, type, receiver_id, idempotency_key,
created_at, data) and the same Standard Webhooks headers (webhook-id = the
notification id, webhook-timestamp = now, webhook-signature), signed here
with the receiver's signing secret from NOTIFYD_SIGNING_SECRET or
--signing-secret-file. So the handler that accepts callbacks accepts these
too, and verifies them the same way; Notifyd-Reconcile: 1 tells them apart
(not signed: for logs). A handler that de-duplicates on the notification id
(Go: query/webhook/once) processes a notification once, whether the callback
or the reconciliation brought it first. --unsigned POSTs the API's JSON
(event_type, payload, status, …) without signature instead.

A 2xx answer means handled; anything else stops the run with exit status 1,
and the checkpoint stays before that notification. Without --handler-url
each notification is printed as the API's JSON, one line each, on stdout.

The checkpoint advances only past handled notifications and is written
atomically (temporary file, fsync, rename) after every page, so the run can
be killed at any point; the next run resumes from it. A notification may
reach the handler twice (pushed and reconciled, or handled just before a
kill): the handler must be idempotent on the notification id.

Rows can become visible slightly after rows with a later created_at, so
each run starts --overlap before the checkpoint and skips the ids it already
handled there (kept in the checkpoint). The first run starts at --since, or
at the oldest notification kept.

--status narrows what is handled (default: all but cancelled). Statuses are
judged when the run reads a notification and a run never goes back further
than --overlap, so a notification that changes status later is not revisited:
for a cron job keep the default and look at "status" in the handler.

Flags:
`

// Reconcile defaults.
const (
	defaultOverlap       = 5 * time.Minute
	defaultPageSize      = 200
	defaultProgressEvery = 1000
	maxHandlerAnswer     = 64 << 10
)

var allStatuses = []string{client.StatusPending, client.StatusDelivered, client.StatusFailed, client.StatusCancelled}

type reconcileOptions struct {
	checkpoint     string
	handlerURL     string
	handlerTimeout time.Duration
	statuses       []string
	since          time.Time
	overlap        time.Duration
	pageSize       int
	progressEvery  int
	receiver       string
	secretFile     string
	unsigned       bool
}

func runReconcile(ctx context.Context, e *env, args []string) error {
	fs := e.flags("reconcile", "")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), reconcileHelp)
		printFlags(fs)
	}
	var o reconcileOptions
	var since timeFlag
	status := fs.String("status", "pending,delivered,failed", "handle only these `statuses` (comma-separated)")
	fs.StringVar(&o.checkpoint, "checkpoint", "", "checkpoint `file` (required; created on the first run)")
	fs.StringVar(&o.handlerURL, "handler-url", "", "POST each notification to this `URL` (default: JSON lines on stdout)")
	fs.DurationVar(&o.handlerTimeout, "handler-timeout", 30*time.Second, "`timeout` of one handler request")
	fs.Var(&since, "since", "first run only: start at `T` (RFC 3339, 2006-01-02, or a duration ago like 24h)")
	fs.DurationVar(&o.overlap, "overlap", defaultOverlap, "re-read this `window` before the checkpoint for late-committed rows")
	fs.IntVar(&o.pageSize, "page-size", defaultPageSize, "notifications per API request, 1..500")
	fs.IntVar(&o.progressEvery, "progress-every", defaultProgressEvery, "report progress on stderr every `N` handled notifications (0: never)")
	fs.StringVar(&o.receiver, "receiver", "", "receiver `id` (required with an admin token)")
	fs.StringVar(&o.secretFile, "signing-secret-file", "", "read the receiver's signing secret (whsec_…) from `file` (default: env NOTIFYD_SIGNING_SECRET)")
	fs.BoolVar(&o.unsigned, "unsigned", false, "POST the API's unsigned JSON instead of a signed callback envelope")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	o.since = since.t
	if err := o.validate(*status, e.token); err != nil {
		return err
	}
	signer, err := o.signer(os.Getenv("NOTIFYD_SIGNING_SECRET"))
	if err != nil {
		return err
	}
	r := &reconciler{env: e, opts: o, api: e.client(), signer: signer, handlerClient: &http.Client{
		Timeout: o.handlerTimeout,
		// A redirect would re-send the notification somewhere unplanned.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	return r.run(ctx)
}

func (o *reconcileOptions) validate(status, token string) error {
	if o.checkpoint == "" {
		return usagef("--checkpoint is required")
	}
	for s := range strings.SplitSeq(status, ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains(allStatuses, s) {
			return usagef("--status: %q is not one of %s", s, strings.Join(allStatuses, ", "))
		}
		if !slices.Contains(o.statuses, s) {
			o.statuses = append(o.statuses, s)
		}
	}
	if o.handlerURL != "" {
		u, err := url.Parse(o.handlerURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usagef("--handler-url must be an http(s) URL")
		}
	}
	if o.handlerTimeout <= 0 {
		return usagef("--handler-timeout must be positive")
	}
	if o.overlap < 0 {
		return usagef("--overlap must not be negative")
	}
	if o.pageSize < 1 || o.pageSize > 500 {
		return usagef("--page-size must be 1..500")
	}
	if o.receiver == "" && !strings.HasPrefix(token, "nfy_") {
		// An admin token lists every receiver's notifications; one
		// checkpoint must follow one receiver.
		return usagef("use a receiver API key (nfy_…), or --receiver with an admin token")
	}
	return nil
}

// signer is what signs the envelopes for the handler: nil without a
// handler or with --unsigned. The secret comes from --signing-secret-file,
// else from the environment; never from a flag's value, which ps shows.
func (o *reconcileOptions) signer(envSecret string) (*webhook.Signer, error) {
	if o.handlerURL == "" || o.unsigned {
		if o.secretFile != "" {
			return nil, usagef("--signing-secret-file is only used with --handler-url and without --unsigned")
		}
		return nil, nil
	}
	secret, from := envSecret, "NOTIFYD_SIGNING_SECRET"
	if o.secretFile != "" {
		raw, err := os.ReadFile(o.secretFile)
		if err != nil {
			return nil, fmt.Errorf("signing secret: %w", err)
		}
		secret, from = strings.TrimSpace(string(raw)), o.secretFile
	}
	if secret == "" {
		return nil, usagef("--handler-url signs each notification like a callback: set NOTIFYD_SIGNING_SECRET=whsec_… " +
			"(the receiver's signing secret) or pass --signing-secret-file, or --unsigned for the API's unsigned JSON")
	}
	s, err := webhook.NewSigner(secret)
	if err != nil {
		// The error names the format, never the secret.
		return nil, usagef("signing secret from %s: %v", from, err)
	}
	return s, nil
}

type reconciler struct {
	*env
	opts          reconcileOptions
	api           *client.Client
	signer        *webhook.Signer // nil: unsigned API JSON
	handlerClient *http.Client
	ckpt          *checkpoint
	dirty         bool
	// counters for progress and the summary
	handled, skipped, ignored int
}

func (r *reconciler) run(ctx context.Context) (err error) {
	started := time.Now()
	unlock, err := lockFile(r.opts.checkpoint + ".lock")
	if err != nil {
		return err
	}
	defer unlock()
	ck, exists, err := loadCheckpoint(r.opts.checkpoint)
	if err != nil {
		return err
	}
	r.ckpt = ck
	if r.opts.receiver != "" && ck.ReceiverID != "" && r.opts.receiver != ck.ReceiverID {
		return fmt.Errorf("checkpoint %s belongs to receiver %s, not %s", r.opts.checkpoint, ck.ReceiverID, r.opts.receiver)
	}

	p := client.ListParams{Order: client.Ascending, Limit: r.opts.pageSize, ReceiverID: r.opts.receiver}
	switch {
	case ck.started():
		p.CreatedAfter = ck.CreatedAt.Add(-r.opts.overlap)
		if !r.opts.since.IsZero() {
			fmt.Fprintf(r.stderr, "reconcile: resuming from the checkpoint; --since applies to the first run only\n")
		}
	case !r.opts.since.IsZero():
		p.CreatedAfter = r.opts.since
	}
	if len(r.opts.statuses) < len(allStatuses) {
		// The API takes a comma-separated list.
		p.Status = strings.Join(r.opts.statuses, ",")
	}
	if !exists {
		// Fail now, not after handling a page, if the file cannot be written.
		if err := ck.save(r.opts.checkpoint, time.Now()); err != nil {
			return err
		}
	}

	defer func() {
		// Whatever stopped the run, keep what was handled.
		if serr := r.save(); serr != nil {
			err = errors.Join(err, serr)
		}
		r.summary(started, err)
	}()
	for {
		page, err := r.api.List(ctx, p)
		if err != nil {
			return fmt.Errorf("list notifications: %w", err)
		}
		for _, n := range page.Data {
			if err := r.one(ctx, n); err != nil {
				return err
			}
		}
		if err := r.save(); err != nil {
			return err
		}
		if !page.HasMore {
			return nil
		}
		if page.NextCursor == "" || page.NextCursor == p.Cursor {
			return errors.New("list notifications: has_more without a new next_cursor")
		}
		p.Cursor = page.NextCursor
	}
}

// one handles one notification, or skips it.
func (r *reconciler) one(ctx context.Context, n *client.Notification) error {
	ck := r.ckpt
	switch {
	case ck.ReceiverID == "":
		ck.ReceiverID = n.ReceiverID
	case n.ReceiverID != ck.ReceiverID:
		return fmt.Errorf("notification %s is of receiver %s, but checkpoint %s follows receiver %s",
			n.ID, n.ReceiverID, r.opts.checkpoint, ck.ReceiverID)
	}
	if _, ok := ck.Seen[n.ID]; ok {
		r.skipped++
		return nil
	}
	if !slices.Contains(r.opts.statuses, n.Status) {
		// The API filters already; this only guards against a server that
		// ignores the filter.
		r.ignored++
		ck.advance(n)
		r.dirty = true
		return nil
	}
	if err := r.deliver(ctx, n); err != nil {
		return err
	}
	ck.handled(n)
	r.dirty = true
	r.handled++
	if r.opts.progressEvery > 0 && r.handled%r.opts.progressEvery == 0 {
		fmt.Fprintf(r.stderr, "reconcile: %d handled, %d already handled, at %s\n", r.handled, r.skipped, fmtTime(n.CreatedAt))
	}
	return nil
}

// deliver hands n to the handler URL, or prints it.
func (r *reconciler) deliver(ctx context.Context, n *client.Notification) error {
	if r.opts.handlerURL == "" {
		body, err := json.Marshal(n)
		if err != nil {
			return fmt.Errorf("encode notification %s: %w", n.ID, err)
		}
		if _, err := r.stdout.Write(append(body, '\n')); err != nil {
			return fmt.Errorf("write notification %s: %w", n.ID, err)
		}
		return nil
	}
	req, err := r.handlerRequest(ctx, n)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "notifyctl/"+buildinfo.Version)
	resp, err := r.handlerClient.Do(req)
	if err != nil {
		return fmt.Errorf("handler for notification %s: %w", n.ID, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxHandlerAnswer))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("handler answered %s for notification %s (created %s): %s",
			resp.Status, n.ID, fmtTime(n.CreatedAt), clean(truncate(strings.TrimSpace(string(answer)), 200)))
	}
	return nil
}

// handlerRequest is n as a signed callback (webhook-id = the notification
// id, so the handler's de-duplication spans callbacks and reconciliation),
// or with --unsigned as the API's JSON.
func (r *reconciler) handlerRequest(ctx context.Context, n *client.Notification) (*http.Request, error) {
	if r.signer != nil {
		return r.signer.Request(ctx, r.opts.handlerURL, &webhook.Event{
			ID: n.ID, Type: n.EventType, ReceiverID: n.ReceiverID, IdempotencyKey: n.IdempotencyKey,
			CreatedAt: n.CreatedAt, Data: n.Payload, Reconciled: true,
		}, time.Now())
	}
	body, err := json.Marshal(n)
	if err != nil {
		return nil, fmt.Errorf("encode notification %s: %w", n.ID, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.opts.handlerURL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("handler request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Notifyd-Notification-Id", n.ID)
	req.Header.Set(webhook.HeaderReconcile, "1")
	return req, nil
}

func (r *reconciler) save() error {
	if !r.dirty {
		return nil
	}
	r.ckpt.prune(r.opts.overlap)
	if err := r.ckpt.save(r.opts.checkpoint, time.Now()); err != nil {
		return err
	}
	r.dirty = false
	return nil
}

func (r *reconciler) summary(started time.Time, err error) {
	state := "done"
	if err != nil {
		state = "stopped"
	}
	at := "none yet"
	if r.ckpt.started() {
		at = fmtTime(r.ckpt.CreatedAt) + " " + r.ckpt.ID
	}
	ignored := ""
	if r.ignored > 0 {
		ignored = fmt.Sprintf(", %d ignored (status)", r.ignored)
	}
	fmt.Fprintf(r.stderr, "reconcile: %s: %d handled, %d skipped (already handled)%s; checkpoint at %s; %s\n",
		state, r.handled, r.skipped, ignored, at, time.Since(started).Round(time.Millisecond))
}
