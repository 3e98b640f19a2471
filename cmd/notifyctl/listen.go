package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/notifyd/notifyd/internal/buildinfo"
	"github.com/notifyd/notifyd/query/client"
)

const listenHelp = `usage: notifyctl listen --forward URL [flags]

Connects to the event stream of a pull receiver (delivery "pull"; --token is
its API key) and forwards each notification to URL as the callback notifyd
would have made: POST, the same body, the same Webhook-Id, Webhook-Timestamp,
Webhook-Signature and Notifyd-Attempt headers. A 2xx answer acknowledges the
notification; any other answer leaves it to be offered again on its retry
schedule. One line per event on stdout (--json: a JSON object). A broken
stream is resumed where it stopped (Last-Event-ID). Stops on SIGINT/SIGTERM.

Build a receiver on a laptop:
  notifyctl listen --token nfy_… --forward http://localhost:3000/webhook

`

// Reconnection backoff after the stream breaks.
const (
	listenRetryFirst = time.Second
	listenRetryMax   = 30 * time.Second
)

// listener is one `notifyctl listen`.
type listener struct {
	*env
	api     *client.Client
	forward string
	hc      *http.Client
	idle    time.Duration
	last    string // Last-Event-ID to resume from
}

func runListen(ctx context.Context, e *env, args []string) error {
	fs := e.flags("listen", "")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), listenHelp)
		printFlags(fs)
	}
	l := &listener{env: e}
	fs.StringVar(&l.forward, "forward", "", "POST each notification to this `URL` (required)")
	timeout := fs.Duration("forward-timeout", 10*time.Second, "`timeout` of one forwarded request")
	fs.StringVar(&l.last, "last-event-id", "", "start after this event `id` (default: every unacknowledged notification)")
	fs.DurationVar(&l.idle, "idle-timeout", time.Minute, "reconnect when the stream is silent this `long` (heartbeats every 15 s)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 0:
		return usagef("unexpected argument %q", pos[0])
	case l.forward == "":
		return usagef("--forward URL is required")
	case !strings.HasPrefix(l.forward, "http://") && !strings.HasPrefix(l.forward, "https://"):
		return usagef("--forward must be an http(s) URL, got %q", l.forward)
	case e.token == "":
		return usagef("--token (the pull receiver's API key) is required")
	}
	l.api = e.client()
	l.hc = &http.Client{
		Timeout: *timeout,
		// notifyd follows no redirect on a callback; neither does listen.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return l.run(ctx)
}

// run reads the stream, reconnecting after breaks, until ctx ends. An
// answer that retrying cannot change (a bad key, a push receiver) ends it.
func (l *listener) run(ctx context.Context) error {
	wait := listenRetryFirst
	for {
		st, err := l.api.Stream(ctx, client.StreamOptions{LastEventID: l.last, IdleTimeout: l.idle})
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !retryable(err) {
			return err
		}
		if err == nil {
			fmt.Fprintf(l.stderr, "listen: connected to %s, forwarding to %s\n", l.url, l.forward)
			var got int
			got, err = l.drain(ctx, st)
			st.Close()
			if ctx.Err() != nil {
				return nil
			}
			if got > 0 {
				wait = listenRetryFirst
			}
		}
		fmt.Fprintf(l.stderr, "listen: stream: %s; reconnecting in %s\n", describe(err), wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, listenRetryMax)
	}
}

// retryable: the stream may work on another try.
func retryable(err error) bool {
	var ae *client.APIError
	if errors.As(err, &ae) {
		return ae.Temporary()
	}
	return true // the network
}

// drain handles events until the stream ends; it returns how many came.
func (l *listener) drain(ctx context.Context, st *client.Stream) (int, error) {
	stop := context.AfterFunc(ctx, func() { st.Close() })
	defer stop()
	for n := 0; ; n++ {
		e, err := st.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("ended by the server")
			}
			return n, err
		}
		l.handle(ctx, e)
		if e.ID != "" {
			l.last = e.ID
		}
	}
}

// outcome is one event's line.
type outcome struct {
	Time     time.Time `json:"time"`
	ID       string    `json:"id"`
	Attempt  int       `json:"attempt"`
	EventID  string    `json:"event_id,omitempty"`
	Status   int       `json:"status,omitempty"` // the local handler's answer
	Acked    bool      `json:"acked"`
	Error    string    `json:"error,omitempty"`
	Duration float64   `json:"duration_ms"`
}

// handle forwards one event, acknowledges it on 2xx, and prints its line.
func (l *listener) handle(ctx context.Context, e *client.Event) {
	o := outcome{Time: time.Now().UTC(), ID: e.NotificationID, Attempt: e.Attempt, EventID: e.ID}
	start := time.Now()
	o.Status, o.Error = l.send(ctx, e)
	o.Duration = float64(time.Since(start).Microseconds()) / 1000
	if o.Error == "" {
		if err := l.api.Ack(ctx, e.NotificationID); err != nil {
			o.Error = "ack: " + describe(err) + " (it will be offered again)"
		} else {
			o.Acked = true
		}
	}
	if l.json {
		_ = writeJSON(l.stdout, o)
		return
	}
	line := fmt.Sprintf("%s  %s  attempt %d  ", fmtTime(o.Time), o.ID, o.Attempt)
	if o.Status != 0 {
		line += fmt.Sprintf("→ %d  ", o.Status)
	}
	if o.Acked {
		line += "acked"
	} else {
		line += "not acked: " + clean(o.Error)
	}
	fmt.Fprintln(l.stdout, line)
}

// send POSTs the event to the local handler as notifyd's callback; the
// error is empty on a 2xx answer.
func (l *listener) send(ctx context.Context, e *client.Event) (status int, errText string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.forward, bytes.NewReader(e.Body))
	if err != nil {
		return 0, err.Error()
	}
	for k, v := range e.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("User-Agent", buildinfo.UserAgent())
	resp, err := l.hc.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxHandlerAnswer))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Sprintf("handler answered %s: %s", resp.Status, truncate(strings.TrimSpace(string(answer)), 200))
	}
	return resp.StatusCode, ""
}

// runAck acknowledges notifications by hand (a pull receiver that
// processed them some other way). Ids that are not the receiver's, or
// cancelled, make it fail after the others are acknowledged.
func runAck(ctx context.Context, e *env, args []string) error {
	fs := e.flags("ack", "ack <id>...")
	ids, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return usagef("want at least one notification id")
	}
	res, err := e.client().AckBatch(ctx, ids)
	if err != nil {
		return err
	}
	if e.json {
		if err := writeJSON(e.stdout, res); err != nil {
			return err
		}
	} else {
		for _, id := range res.Acknowledged {
			fmt.Fprintf(e.stdout, "%s  acked\n", id)
		}
	}
	if len(res.NotFound)+len(res.Cancelled) > 0 {
		return fmt.Errorf("not acknowledged: not found %v, cancelled %v", res.NotFound, res.Cancelled)
	}
	return nil
}
