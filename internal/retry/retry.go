// Package retry describes when a failed delivery is tried again.
//
// A Policy is either exponential (base × factor^(k−1), capped at MaxInterval,
// with jitter) or an explicit list of intervals, so that schedules such as
// WeChat Pay's can be copied exactly. Attempt numbers start at 1; attempt 1 is
// sent at once and Delay(k) is the wait between attempt k and attempt k+1.
//
// It is pure computation: it must not sleep, enqueue or touch a store.
package retry

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"
)

// Limits that keep a policy sane. A schedule longer than a few days is almost
// certainly a mistake, and attempts are stored as smallint.
const (
	MaxAttemptsLimit = 100
	MinInterval      = 100 * time.Millisecond
	MaxIntervalLimit = 7 * 24 * time.Hour
	MaxJitter        = 0.5
)

// ErrInvalidPolicy is wrapped by every validation error.
var ErrInvalidPolicy = errors.New("invalid retry policy")

// Policy is a retry schedule. The zero value of a field means "inherit" when a
// receiver's policy is merged over the service default (see Merge).
type Policy struct {
	MaxAttempts int             `json:"max_attempts,omitempty"`
	Base        time.Duration   `json:"-"`
	Factor      float64         `json:"factor,omitempty"`
	MaxInterval time.Duration   `json:"-"`
	Jitter      *float64        `json:"jitter,omitempty"` // fraction, e.g. 0.2 for ±20 %
	Intervals   []time.Duration `json:"-"`
}

// Default spans about a day, like Alipay (25 h), WeChat Pay (24 h) and Svix
// (27 h): 12 attempts, 15 s × 3^(k−1) capped at 6 h, ±20 % jitter.
func Default() Policy {
	j := 0.2
	return Policy{MaxAttempts: 12, Base: 15 * time.Second, Factor: 3, MaxInterval: 6 * time.Hour, Jitter: &j}
}

// jsonPolicy is the wire form: durations in Go syntax ("15s", "6h").
type jsonPolicy struct {
	MaxAttempts int      `json:"max_attempts,omitempty"`
	Base        string   `json:"base,omitempty"`
	Factor      float64  `json:"factor,omitempty"`
	MaxInterval string   `json:"max_interval,omitempty"`
	Jitter      *float64 `json:"jitter,omitempty"`
	Intervals   []string `json:"intervals,omitempty"`
}

// MarshalJSON writes durations in Go syntax.
func (p Policy) MarshalJSON() ([]byte, error) {
	j := jsonPolicy{MaxAttempts: p.MaxAttempts, Factor: p.Factor, Jitter: p.Jitter}
	if p.Base > 0 {
		j.Base = p.Base.String()
	}
	if p.MaxInterval > 0 {
		j.MaxInterval = p.MaxInterval.String()
	}
	for _, d := range p.Intervals {
		j.Intervals = append(j.Intervals, d.String())
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads durations in Go syntax. It does not validate ranges;
// call Validate for that.
func (p *Policy) UnmarshalJSON(b []byte) error {
	var j jsonPolicy
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidPolicy, err)
	}
	out := Policy{MaxAttempts: j.MaxAttempts, Factor: j.Factor, Jitter: j.Jitter}
	var err error
	if out.Base, err = parseDuration("base", j.Base); err != nil {
		return err
	}
	if out.MaxInterval, err = parseDuration("max_interval", j.MaxInterval); err != nil {
		return err
	}
	for i, s := range j.Intervals {
		d, err := parseDuration(fmt.Sprintf("intervals[%d]", i), s)
		if err != nil {
			return err
		}
		out.Intervals = append(out.Intervals, d)
	}
	*p = out
	return nil
}

func parseDuration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %q is not a duration like \"15s\" or \"6h\"", ErrInvalidPolicy, field, s)
	}
	return d, nil
}

// Merge returns p with every unset field taken from def. When p gives
// explicit intervals, the exponential fields of def do not matter, and
// MaxAttempts defaults to len(Intervals)+1 so that the list is used in full.
func (p Policy) Merge(def Policy) Policy {
	out := p
	if len(out.Intervals) > 0 {
		if out.MaxAttempts == 0 {
			out.MaxAttempts = len(out.Intervals) + 1
		}
		if out.Jitter == nil {
			zero := 0.0
			out.Jitter = &zero
		}
		return out
	}
	if out.MaxAttempts == 0 {
		out.MaxAttempts = def.MaxAttempts
	}
	if out.Base == 0 {
		out.Base = def.Base
	}
	if out.Factor == 0 {
		out.Factor = def.Factor
	}
	if out.MaxInterval == 0 {
		out.MaxInterval = def.MaxInterval
	}
	if out.Jitter == nil {
		out.Jitter = def.Jitter
	}
	return out
}

// Validate reports the first out-of-range field, naming it. It expects a
// policy that has been merged with the default, or a partial policy whose
// unset fields are zero (zero fields are not checked).
func (p Policy) Validate() error {
	bad := func(field, msg string, args ...any) error {
		return fmt.Errorf("%w: %s %s", ErrInvalidPolicy, field, fmt.Sprintf(msg, args...))
	}
	if p.MaxAttempts < 0 || p.MaxAttempts > MaxAttemptsLimit {
		return bad("max_attempts", "must be between 1 and %d", MaxAttemptsLimit)
	}
	if p.Base != 0 && (p.Base < MinInterval || p.Base > MaxIntervalLimit) {
		return bad("base", "must be between %s and %s", MinInterval, MaxIntervalLimit)
	}
	if p.Factor != 0 && (p.Factor < 1 || p.Factor > 100 || math.IsNaN(p.Factor)) {
		return bad("factor", "must be between 1 and 100")
	}
	if p.MaxInterval != 0 && (p.MaxInterval < MinInterval || p.MaxInterval > MaxIntervalLimit) {
		return bad("max_interval", "must be between %s and %s", MinInterval, MaxIntervalLimit)
	}
	if p.Jitter != nil && (*p.Jitter < 0 || *p.Jitter > MaxJitter || math.IsNaN(*p.Jitter)) {
		return bad("jitter", "must be between 0 and %g", MaxJitter)
	}
	if len(p.Intervals) >= MaxAttemptsLimit {
		return bad("intervals", "may hold at most %d entries", MaxAttemptsLimit-1)
	}
	for i, d := range p.Intervals {
		if d < MinInterval || d > MaxIntervalLimit {
			return bad(fmt.Sprintf("intervals[%d]", i), "must be between %s and %s", MinInterval, MaxIntervalLimit)
		}
	}
	if len(p.Intervals) > 0 && p.MaxAttempts > len(p.Intervals)+1 {
		return bad("max_attempts", "is larger than the interval list allows (%d)", len(p.Intervals)+1)
	}
	return nil
}

// Planned is the un-jittered wait after attempt k (k ≥ 1).
func (p Policy) Planned(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	if len(p.Intervals) > 0 {
		if attempt > len(p.Intervals) {
			return p.Intervals[len(p.Intervals)-1]
		}
		return p.Intervals[attempt-1]
	}
	d := float64(p.Base) * math.Pow(p.Factor, float64(attempt-1))
	if p.MaxInterval > 0 && d > float64(p.MaxInterval) {
		return p.MaxInterval
	}
	if d > float64(MaxIntervalLimit) {
		return MaxIntervalLimit
	}
	return time.Duration(d)
}

// Delay is the wait after attempt k with jitter applied. Jitter spreads the
// retries of a burst that failed together (a receiver outage) so they do not
// all come back at the same second.
func (p Policy) Delay(attempt int) time.Duration {
	d := p.Planned(attempt)
	if p.Jitter == nil || *p.Jitter == 0 {
		return d
	}
	j := *p.Jitter
	return time.Duration(float64(d) * (1 - j + 2*j*rand.Float64()))
}

// RetryAfter clamps a receiver's Retry-After hint to [planned, 2×planned]: a
// receiver may slow us down, but neither hurry us nor park a notification
// indefinitely.
func RetryAfter(planned, hint time.Duration) time.Duration {
	switch {
	case hint < planned:
		return planned
	case hint > 2*planned:
		return 2 * planned
	}
	return hint
}

// Total is the un-jittered time from the first to the last attempt.
func (p Policy) Total() time.Duration {
	var t time.Duration
	for k := 1; k < p.MaxAttempts; k++ {
		t += p.Planned(k)
	}
	return t
}
