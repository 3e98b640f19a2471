package query

import (
	"errors"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/notifyd/notifyd/internal/store"
)

// A page of notifications is mostly payloads, and encoding/json re-validates
// and re-compacts every json.RawMessage through its byte-at-a-time scanner:
// in the query benchmark that, with the reflection around it, was two thirds
// of the CPU of a list request. The encoders here write exactly the bytes
// encoding/json writes for the same values (jsonenc_test.go compares them
// on generated and fuzzed values), only faster.

// bufPool holds response buffers; a page of 50 is about 20 KiB.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 32<<10); return &b }}

// Buffers that grew past this are dropped rather than kept in the pool
// (one page of 500 large payloads should not pin megabytes).
const maxPooledBuf = 1 << 20

// writeJSON answers with what append produces, or, when the client asked
// for indentation (?pretty, which Echo's c.JSON honours), with c.JSON of
// v. append must produce what c.JSON(code, v) would, without the newline.
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
	return appendNotification(b, v.Notification, v.DeliveryAttempts)
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
	if n.Payload == nil {
		b = append(b, "null"...)
	} else if b, err = appendCompactJSON(b, n.Payload); err != nil {
		return nil, err
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
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i, x := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexDigits[x>>4], hexDigits[x&0xF])
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

// inStringPlain marks the bytes a JSON string's content copies through
// unchanged: everything but the closing quote, the backslash, control
// characters, <, > and & (escaped for HTML) and 0xE2 (which may begin
// U+2028 or U+2029, also escaped).
var inStringPlain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' && c != 0xE2
	}
	return t
}()

// maxNesting is encoding/json's limit on nested arrays and objects.
const maxNesting = 10000

var errBadJSON = errors.New("encode payload: stored payload is not valid JSON")

// appendCompactJSON appends src as json.Marshal writes a json.RawMessage
// holding it: validated (an error, and nothing appended, if src is not one
// JSON value), whitespace outside strings removed, and <, >, &, U+2028 and
// U+2029 escaped. Invalid UTF-8 inside strings is kept as it is, as
// encoding/json keeps it in raw messages.
func appendCompactJSON(dst, src []byte) ([]byte, error) {
	orig := len(dst)
	// Open containers, '{' or '['; most payloads nest a few levels.
	var stackBuf [32]byte
	stack := stackBuf[:0]
	i, n := 0, len(src)
	fail := func() ([]byte, error) { return dst[:orig], errBadJSON }
	skipSpace := func() {
		for i < n && (src[i] == ' ' || src[i] == '\t' || src[i] == '\n' || src[i] == '\r') {
			i++
		}
	}
	// str copies the string starting at src[i] (a quote); false if it is
	// malformed.
	str := func() bool {
		dst = append(dst, '"')
		i++
		for {
			start := i
			for i < n && inStringPlain[src[i]] {
				i++
			}
			dst = append(dst, src[start:i]...)
			if i >= n {
				return false
			}
			switch c := src[i]; {
			case c == '"':
				dst = append(dst, '"')
				i++
				return true
			case c == '\\':
				if i+1 >= n {
					return false
				}
				switch e := src[i+1]; e {
				case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
					dst = append(dst, '\\', e)
					i += 2
				case 'u':
					if i+6 > n {
						return false
					}
					for _, h := range src[i+2 : i+6] {
						if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
							return false
						}
					}
					dst = append(dst, src[i:i+6]...)
					i += 6
				default:
					return false
				}
			case c < 0x20:
				return false
			case c == 0xE2:
				if i+2 < n && src[i+1] == 0x80 && src[i+2]&^1 == 0xA8 {
					dst = append(dst, '\\', 'u', '2', '0', '2', hex[src[i+2]&0xF])
					i += 3
				} else {
					dst = append(dst, c)
					i++
				}
			default: // <, >, &
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
				i++
			}
		}
	}
	digits := func() int {
		start := i
		for i < n && '0' <= src[i] && src[i] <= '9' {
			i++
		}
		return i - start
	}
	num := func() bool {
		start := i
		if src[i] == '-' {
			i++
		}
		switch {
		case i < n && src[i] == '0':
			i++
		case i < n && '1' <= src[i] && src[i] <= '9':
			digits()
		default:
			return false
		}
		if i < n && src[i] == '.' {
			i++
			if digits() == 0 {
				return false
			}
		}
		if i < n && (src[i] == 'e' || src[i] == 'E') {
			i++
			if i < n && (src[i] == '+' || src[i] == '-') {
				i++
			}
			if digits() == 0 {
				return false
			}
		}
		dst = append(dst, src[start:i]...)
		return true
	}
	lit := func(word string) bool {
		if n-i < len(word) || string(src[i:i+len(word)]) != word {
			return false
		}
		dst = append(dst, word...)
		i += len(word)
		return true
	}
	// key reads an object member's name and its colon.
	key := func() bool {
		if i >= n || src[i] != '"' || !str() {
			return false
		}
		skipSpace()
		if i >= n || src[i] != ':' {
			return false
		}
		dst = append(dst, ':')
		i++
		return true
	}

	// Each turn reads one value (opening containers as it goes), then
	// closes containers and reads separators up to the next value.
	for {
		skipSpace()
		if i >= n {
			return fail()
		}
		switch c := src[i]; c {
		case '{', '[':
			if len(stack) >= maxNesting {
				return fail()
			}
			stack = append(stack, c)
			dst = append(dst, c)
			i++
			skipSpace()
			if i < n && src[i] == c+2 { // '}' is '{'+2, ']' is '['+2
				stack = stack[:len(stack)-1]
				dst = append(dst, c+2)
				i++
				break
			}
			if c == '{' && !key() {
				return fail()
			}
			continue // the first value in the container
		case '"':
			if !str() {
				return fail()
			}
		case 't':
			if !lit("true") {
				return fail()
			}
		case 'f':
			if !lit("false") {
				return fail()
			}
		case 'n':
			if !lit("null") {
				return fail()
			}
		default:
			if c != '-' && (c < '0' || c > '9') || !num() {
				return fail()
			}
		}
		// A value ended: close containers until one continues.
		for {
			skipSpace()
			if len(stack) == 0 {
				if i != n {
					return fail()
				}
				return dst, nil
			}
			if i >= n {
				return fail()
			}
			top := stack[len(stack)-1]
			if src[i] == top+2 {
				stack = stack[:len(stack)-1]
				dst = append(dst, top+2)
				i++
				continue
			}
			if src[i] != ',' {
				return fail()
			}
			dst = append(dst, ',')
			i++
			if top == '{' {
				skipSpace()
				if !key() {
					return fail()
				}
			}
			break
		}
	}
}
