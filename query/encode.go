package query

import (
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/notifyd/notifyd/internal/store"
)

// The listing and look-up answers are written by hand, not by c.JSON: a
// page is mostly payloads, and encoding/json re-validates and re-compacts
// every json.RawMessage with its byte-at-a-time scanner, on top of the
// reflection. BenchmarkListRequest (a page of 50 notifications with ~300 B
// payloads, real Postgres, in process; benchstat of 6 runs on a busy 2-core
// machine) measured 394 µs of CPU per request with these encoders against
// 850 µs with c.JSON (+116 %); goccy/go-json as Echo's serializer cost
// +53 % in another run. Payloads are written as stored, not re-checked:
// every path that stores one (internal/ingest's rules, then json.Compact or
// the task's encoding) has already validated and compacted it. Everything else is exactly what encoding/json writes for the same
// values (encode_test.go compares them).

// bufPool holds response buffers; a page of 50 is about 20 KiB.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 32<<10); return &b }}

// Buffers that grew past this are dropped rather than kept in the pool
// (one page of 500 large payloads should not pin megabytes).
const maxPooledBuf = 1 << 20

// writeJSON answers with what append produces, or, when the client asked
// for indentation (?pretty, which Echo's c.JSON honours), with c.JSON of
// v. append must produce the JSON value c.JSON(code, v) would, without the
// newline.
func writeJSON(c echo.Context, code int, v any, appendJSON func([]byte) ([]byte, error)) error {
	if _, pretty := c.QueryParams()["pretty"]; pretty || c.Echo().Debug {
		return c.JSON(code, v)
	}
	bp := bufPool.Get().(*[]byte)
	b, err := appendJSON((*bp)[:0])
	if err != nil {
		bufPool.Put(bp)
		return err
	}
	b = append(b, '\n') // json.Encoder ends every value with one
	// With the length known, net/http sends a page in two writes to the
	// socket instead of three (header and body chunked, then the final
	// empty chunk); writes to the socket are among the API's largest costs.
	// net/http sets it itself for answers shorter than 2 KiB.
	c.Response().Header().Set(echo.HeaderContentLength, strconv.Itoa(len(b)))
	err = c.Blob(code, echo.MIMEApplicationJSON, b)
	if cap(b) <= maxPooledBuf {
		*bp = b
		bufPool.Put(bp)
	}
	return err
}

func (p *listPage) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"data":[`...)
	var err error
	for i, n := range p.Data {
		if i > 0 {
			b = append(b, ',')
		}
		if b, err = appendNotification(b, n, nil); err != nil {
			return nil, err
		}
	}
	b = append(b, `],"next_cursor":`...)
	if p.NextCursor == nil {
		b = append(b, "null"...)
	} else {
		b = appendString(b, *p.NextCursor)
	}
	b = append(b, `,"has_more":`...)
	b = strconv.AppendBool(b, p.HasMore)
	return append(b, '}'), nil
}

func (v *notificationView) appendJSON(b []byte) ([]byte, error) {
	b, err := appendNotification(b, v.Notification, v.DeliveryAttempts)
	if err != nil || v.Deferral == nil {
		return b, err
	}
	// Rare (an open circuit): encoding/json is fast enough for it.
	d, err := json.Marshal(v.Deferral)
	if err != nil {
		return nil, err
	}
	b = append(b[:len(b)-1], `,"deferral":`...)
	b = append(b, d...)
	return append(b, '}'), nil
}

// appendNotification writes n as store.Notification's JSON tags say, and,
// when there are any, attempts as notificationView's delivery_attempts.
func appendNotification(b []byte, n *store.Notification, attempts []attemptView) ([]byte, error) {
	if n == nil {
		// Not reached by the handlers; encoding/json would write the
		// embedded pointer's fields as absent, which is not worth copying.
		return nil, errors.New("encode notification: nil")
	}
	var err error
	b = append(b, `{"id":`...)
	b = appendUUID(b, n.ID)
	b = append(b, `,"receiver_id":`...)
	b = appendUUID(b, n.ReceiverID)
	b = append(b, `,"event_type":`...)
	b = appendString(b, n.EventType)
	b = append(b, `,"idempotency_key":`...)
	b = appendString(b, n.IdempotencyKey)
	if n.CallbackURL != nil {
		b = append(b, `,"callback_url":`...)
		b = appendString(b, *n.CallbackURL)
	}
	b = append(b, `,"payload":`...)
	switch {
	case n.Payload == nil:
		b = append(b, "null"...)
	case len(n.Payload) == 0:
		return nil, errEmptyPayload
	default:
		b = append(b, n.Payload...)
	}
	b = append(b, `,"status":`...)
	b = appendString(b, n.Status)
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(n.Attempts), 10)
	b = append(b, `,"max_attempts":`...)
	b = strconv.AppendInt(b, int64(n.MaxAttempts), 10)
	b = append(b, `,"created_at":`...)
	if b, err = appendTime(b, n.CreatedAt); err != nil {
		return nil, err
	}
	for _, f := range [...]struct {
		name string
		t    *time.Time
	}{{`,"next_attempt_at":`, n.NextAttemptAt}, {`,"last_attempt_at":`, n.LastAttemptAt}, {`,"delivered_at":`, n.DeliveredAt}} {
		if f.t != nil {
			b = append(b, f.name...)
			if b, err = appendTime(b, *f.t); err != nil {
				return nil, err
			}
		}
	}
	if n.LastStatusCode != nil {
		b = append(b, `,"last_status_code":`...)
		b = strconv.AppendInt(b, int64(*n.LastStatusCode), 10)
	}
	if n.LastError != nil {
		b = append(b, `,"last_error":`...)
		b = appendString(b, *n.LastError)
	}
	if len(attempts) > 0 {
		b = append(b, `,"delivery_attempts":[`...)
		for i := range attempts {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = attempts[i].appendJSON(b); err != nil {
				return nil, err
			}
		}
		b = append(b, ']')
	}
	return append(b, '}'), nil
}

func (a *attemptView) appendJSON(b []byte) ([]byte, error) {
	var err error
	b = append(b, `{"attempt":`...)
	b = strconv.AppendInt(b, int64(a.AttemptNo), 10)
	b = append(b, `,"started_at":`...)
	if b, err = appendTime(b, a.StartedAt); err != nil {
		return nil, err
	}
	if a.StatusCode != 0 {
		b = append(b, `,"status_code":`...)
		b = strconv.AppendInt(b, int64(a.StatusCode), 10)
	}
	b = append(b, `,"outcome":`...)
	b = appendString(b, a.Outcome)
	if a.Error != "" {
		b = append(b, `,"error":`...)
		b = appendString(b, a.Error)
	}
	if a.ResponseBody != "" {
		b = append(b, `,"response_body":`...)
		b = appendString(b, a.ResponseBody)
	}
	b = append(b, `,"manual":`...)
	b = strconv.AppendBool(b, a.Manual)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendInt(b, a.DurationMS, 10)
	return append(b, '}'), nil
}

// appendUUID is uuid.UUID's MarshalText as a JSON string.
func appendUUID(b []byte, id [16]byte) []byte {
	b = append(b, '"')
	for i, x := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hex[x>>4], hex[x&0xF])
	}
	return append(b, '"')
}

// appendTime is time.Time's MarshalJSON without its allocation; AppendText
// formats and refuses exactly the same times.
func appendTime(b []byte, t time.Time) ([]byte, error) {
	b = append(b, '"')
	b, err := t.AppendText(b)
	if err != nil {
		return nil, err
	}
	return append(b, '"'), nil
}

const hex = "0123456789abcdef"

// errEmptyPayload: no write path stores one, and it is not a JSON value.
var errEmptyPayload = errors.New("encode notification: empty payload")

// htmlSafe marks the ASCII bytes encoding/json writes into a string as they
// are when it escapes HTML (its default): printable ASCII except the quote,
// the backslash, <, > and &.
var htmlSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendString is encoding/json's string encoding with HTML escaping:
// control characters, quote, backslash, <, > and & escaped, invalid UTF-8
// replaced by U+FFFD, U+2028 and U+2029 escaped.
func appendString(dst []byte, src string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(src); {
		if c := src[i]; c < utf8.RuneSelf {
			if htmlSafe[c] {
				i++
				continue
			}
			dst = append(dst, src[start:i]...)
			switch c {
			case '\\', '"':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(src[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, src[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, src[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, src[start:]...)
	return append(dst, '"')
}
