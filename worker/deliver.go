package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/notifyd/notifyd/internal/envelope"
	"github.com/notifyd/notifyd/internal/netguard"
	"github.com/notifyd/notifyd/internal/signing"
	"github.com/notifyd/notifyd/internal/store"
)

// Bounds on what a receiver can make us read and keep. Receivers' answers
// are untrusted input: huge or endless bodies must not cost memory.
const (
	maxResponseRead  = 64 << 10
	maxResponseStore = 4 << 10
)

// HeaderAttempt carries the automatic attempt number (internal/envelope).
const HeaderAttempt = envelope.HeaderAttempt

// deliverer makes one HTTP attempt and classifies the answer.
type deliverer struct {
	client    *http.Client
	targets   netguard.Policy
	userAgent string
}

func newDeliverer(policy netguard.Policy, userAgent string) *deliverer {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: policy.Control}
	transport := &http.Transport{
		// No proxy from the environment: the address check must see the
		// receiver's address, not a proxy's.
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           2048,
		MaxIdleConnsPerHost:    256,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    5 * time.Second,
		MaxResponseHeaderBytes: 32 << 10,
	}
	return &deliverer{
		client: &http.Client{
			Transport: transport,
			// A redirect is a failure: following it would let a receiver point
			// us anywhere, and payment callbacks must hit the configured URL.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		targets:   policy,
		userAgent: userAgent,
	}
}

// attemptRequest is everything one HTTP attempt needs.
type attemptRequest struct {
	ID          string
	URL         string
	Body        []byte
	Attempt     int // as shown to the receiver
	Signer      *signing.Signer
	Timeout     time.Duration
	SuccessBody *string
}

// attemptResult is what happened.
type attemptResult struct {
	Started    time.Time
	Duration   time.Duration
	StatusCode int
	Outcome    string
	Error      string
	Body       string
	RetryAfter time.Duration // from a 429/503 Retry-After header
}

// attempt makes the request in a client span (tracing.go).
func (d *deliverer) attempt(ctx context.Context, r *attemptRequest) attemptResult {
	ctx, span := traceAttempt(ctx, r)
	res := d.post(ctx, r)
	endAttempt(span, &res)
	return res
}

func (d *deliverer) post(ctx context.Context, r *attemptRequest) attemptResult {
	// Started is taken before the deadline is set, so a timed-out attempt
	// never records less than its timeout.
	res := attemptResult{Started: time.Now()}
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	finish := func(outcome, msg string) attemptResult {
		res.Duration = time.Since(res.Started)
		// Transport errors quote what the receiver sent (a malformed status
		// line can be 32 KiB); bound them like bodies.
		res.Outcome, res.Error = outcome, storableBody([]byte(msg))
		return res
	}
	// The dial-time check (policy.Control) sees only resolved addresses, but
	// an IP spelled "0x7f000001" or "2130706433" never resolves with Go's own
	// resolver (it would be a DNS failure, not "blocked"), and cgo's
	// getaddrinfo would read it as 127.0.0.1. Normalising the URL with the
	// same policy first makes what is dialled what was checked.
	u, err := d.targets.ValidateURL(r.URL)
	if err != nil {
		if errors.Is(err, netguard.ErrForbiddenTarget) {
			return finish(store.OutcomeBlocked, err.Error())
		}
		return finish(store.OutcomeFailure, err.Error())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(r.Body))
	if err != nil {
		return finish(store.OutcomeFailure, "build request: "+err.Error())
	}
	h := req.Header
	h["Content-Type"] = []string{"application/json"}
	h["User-Agent"] = []string{d.userAgent}
	h[http.CanonicalHeaderKey(signing.HeaderID)] = []string{r.ID}
	h[http.CanonicalHeaderKey(signing.HeaderTimestamp)] = []string{strconv.FormatInt(res.Started.Unix(), 10)}
	h[http.CanonicalHeaderKey(signing.HeaderSignature)] = []string{r.Signer.Header(r.ID, res.Started, r.Body)}
	h[HeaderAttempt] = []string{strconv.Itoa(r.Attempt)}
	injectTrace(ctx, h)

	resp, err := d.client.Do(req)
	if err != nil {
		return finish(classifyError(ctx, err, r.Timeout))
	}
	defer resp.Body.Close()
	res.StatusCode = resp.StatusCode
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, maxResponseRead))
	res.Body = storableBody(body)
	if readErr != nil {
		outcome, msg := classifyError(ctx, readErr, r.Timeout)
		return finish(outcome, fmt.Sprintf("HTTP %d, reading body: %s", resp.StatusCode, msg))
	}
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		if r.SuccessBody != nil && strings.TrimSpace(string(body)) != *r.SuccessBody {
			return finish(store.OutcomeFailure, fmt.Sprintf("HTTP %d but body is not %q", code, *r.SuccessBody))
		}
		return finish(store.OutcomeSuccess, "")
	case code == http.StatusGone:
		return finish(store.OutcomeGone, "HTTP 410 Gone: receiver asked to stop")
	case code >= 300 && code < 400:
		return finish(store.OutcomeFailure, fmt.Sprintf("HTTP %d: redirects are not followed", code))
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		res.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return finish(store.OutcomeFailure, "HTTP "+strconv.Itoa(resp.StatusCode))
}

func classifyError(ctx context.Context, err error, timeout time.Duration) (outcome, msg string) {
	switch {
	case errors.Is(err, netguard.ErrForbiddenTarget):
		return store.OutcomeBlocked, err.Error()
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
		return store.OutcomeTimeout, fmt.Sprintf("timed out after %s", timeout)
	}
	var uerr interface{ Unwrap() error }
	if errors.As(err, &uerr) {
		// url.Error repeats method and URL; the URL is on record already.
		if inner := uerr.Unwrap(); inner != nil {
			err = inner
		}
	}
	return store.OutcomeFailure, err.Error()
}

// storableBody keeps at most maxResponseStore bytes of valid UTF-8 without
// NUL bytes (Postgres text cannot hold them).
func storableBody(b []byte) string {
	if len(b) > maxResponseStore {
		b = b[:maxResponseStore]
		// Do not leave half a character at the cut.
		for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
			if utf8.RuneStart(b[i]) {
				if !utf8.FullRune(b[i:]) {
					b = b[:i]
				}
				break
			}
		}
	}
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	// Each invalid byte can become a 3-byte U+FFFD, so cut after cleaning,
	// and never inside a character: the cut must stay valid UTF-8.
	if len(s) > maxResponseStore {
		cut := maxResponseStore
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

// maxRetryAfterSeconds bounds a Retry-After hint; the retry policy caps it
// much lower anyway (retry.RetryAfter), this only keeps the arithmetic sane.
const maxRetryAfterSeconds = 366 * 24 * 3600

// parseRetryAfter reads delay-seconds or an HTTP date; 0 when absent or bad.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && secs > 0 {
		// Clamp before multiplying: a receiver's "Retry-After: 99999999999"
		// would overflow time.Duration into a negative or random delay.
		return time.Duration(min(secs, maxRetryAfterSeconds)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
