package tasks

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Decoding every task with encoding/json was about 8 % of a worker's CPU: it
// scans the payload twice (once to validate, once to decode) and reflects
// over the struct. decodeFast reads the exact layout Task writes (fields in
// struct order, no spaces) with one pass over the bytes; anything else, or
// a string with escapes in it, is left to encoding/json. FuzzDecode checks
// that both read every input alike.

// decodeFast fills d from b and reports whether b had the expected layout.
func decodeFast(b []byte, d *Deliver) bool {
	p := parser{b: b}
	if !p.lit(`{"id":`) || !p.uuid(&d.ID) ||
		!p.lit(`,"receiver_id":`) || !p.uuid(&d.ReceiverID) ||
		!p.lit(`,"event_type":`) || !p.str(&d.EventType) ||
		!p.lit(`,"idempotency_key":`) || !p.str(&d.IdempotencyKey) {
		return false
	}
	if p.lit(`,"callback_url":`) && !p.str(&d.CallbackURL) {
		return false
	}
	if !p.lit(`,"payload":`) {
		return false
	}
	payload, ok := p.value()
	if !ok || !p.lit(`,"enqueued_at":`) || !p.time(&d.EnqueuedAt) || !p.lit(`,"attempt":`) || !p.int(&d.Attempt) {
		return false
	}
	if p.lit(`,"manual":`) && !p.int(&d.Manual) {
		return false
	}
	if !p.lit(`}`) || p.i != len(b) {
		return false
	}
	// encoding/json copies a RawMessage and keeps "null" as is.
	d.Payload = append(json.RawMessage(nil), payload...)
	return true
}

type parser struct {
	b []byte
	i int
}

func (p *parser) lit(s string) bool {
	if len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		return false
	}
	p.i += len(s)
	return true
}

// quoted returns the bytes of a JSON string without escapes.
func (p *parser) quoted() ([]byte, bool) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return nil, false
	}
	end := bytes.IndexByte(p.b[p.i+1:], '"')
	if end < 0 {
		return nil, false
	}
	s := p.b[p.i+1 : p.i+1+end]
	for _, c := range s {
		if c == '\\' || c < 0x20 || c >= 0x80 {
			return nil, false // escapes, control bytes, non-ASCII: encoding/json's job
		}
	}
	p.i += end + 2
	return s, true
}

func (p *parser) str(dst *string) bool {
	s, ok := p.quoted()
	if ok {
		*dst = string(s)
	}
	return ok
}

func (p *parser) uuid(dst *uuid.UUID) bool {
	s, ok := p.quoted()
	if !ok || len(s) != 36 {
		return false
	}
	id, err := uuid.ParseBytes(s)
	if err != nil {
		return false
	}
	*dst = id
	return true
}

func (p *parser) time(dst *time.Time) bool {
	start := p.i
	if _, ok := p.quoted(); !ok {
		return false
	}
	// What encoding/json calls, quotes included.
	return dst.UnmarshalJSON(p.b[start:p.i]) == nil
}

func (p *parser) int(dst *int) bool {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	if p.i == start || p.i-start > 9 || (p.b[start] == '0' && p.i-start > 1) {
		return false
	}
	n, err := strconv.Atoi(string(p.b[start:p.i]))
	if err != nil {
		return false
	}
	*dst = n
	return true
}

// value skips one JSON value and returns its bytes. It checks nesting and
// strings only; json.Valid on the result decides the rest.
func (p *parser) value() ([]byte, bool) {
	start, depth := p.i, 0
	for p.i < len(p.b) {
		switch c := p.b[p.i]; c {
		case '"':
			p.i++
			for p.i < len(p.b) && p.b[p.i] != '"' {
				if p.b[p.i] == '\\' {
					p.i++
				}
				p.i++
			}
			if p.i >= len(p.b) {
				return nil, false
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return p.end(start)
			}
			depth--
		case ',':
			if depth == 0 {
				return p.end(start)
			}
		}
		p.i++
	}
	return nil, false
}

func (p *parser) end(start int) ([]byte, bool) {
	v := p.b[start:p.i]
	// encoding/json leaves surrounding whitespace out of a RawMessage;
	// Task writes none.
	if len(v) == 0 || isSpace(v[0]) || isSpace(v[len(v)-1]) || !json.Valid(v) {
		return nil, false
	}
	return v, true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
