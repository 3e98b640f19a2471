package query

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"
)

// Rate is a token bucket: PerSecond requests per second on average, up to
// Burst at once. The zero value takes the default; a negative PerSecond
// turns the limit off.
type Rate struct {
	PerSecond float64
	Burst     int
}

func (r Rate) off() bool { return r.PerSecond < 0 }

// RateLimits are the API's token buckets: one per principal of each kind
// (the admin, each producer, each receiver with all its keys) and one per
// client IP for failed authentication.
type RateLimits struct {
	Admin, Producer, Receiver, AuthFailures Rate
}

// DefaultRateLimits stop a runaway or hostile client without capping real
// load: one receiver's key reading thousands of pages a second, a producer
// ingesting thousands a second. Failed authentication is cheap to refuse and
// never needed at volume.
var DefaultRateLimits = RateLimits{
	Admin:        Rate{PerSecond: 10000, Burst: 20000},
	Producer:     Rate{PerSecond: 10000, Burst: 20000},
	Receiver:     Rate{PerSecond: 10000, Burst: 20000},
	AuthFailures: Rate{PerSecond: 10, Burst: 100},
}

func (l *RateLimits) setDefaults() {
	for _, p := range []struct{ r, def *Rate }{
		{&l.Admin, &DefaultRateLimits.Admin}, {&l.Producer, &DefaultRateLimits.Producer},
		{&l.Receiver, &DefaultRateLimits.Receiver}, {&l.AuthFailures, &DefaultRateLimits.AuthFailures},
	} {
		if p.r.PerSecond == 0 {
			*p.r = *p.def
		}
		if p.r.Burst < 1 {
			p.r.Burst = 1
		}
	}
}

// The buckets live in each API process, not in Redis: a Redis round trip
// per request would cost about as much as the request it guards, on the
// Redis that carries the queue. The limits guard against abuse rather than
// meter usage, so a fleet of N API processes allowing N times the limit is
// acceptable; set the limits per process accordingly.
type rateLimiter struct {
	cfg                                  RateLimits
	admin, producer, receiver, authFails *buckets
}

// errRateLimited is the answer to a request over its bucket.
var errRateLimited = apiError(http.StatusTooManyRequests, "rate_limited", "too many requests; retry after the time in Retry-After")

func newRateLimiter(cfg RateLimits) *rateLimiter {
	cfg.setDefaults()
	return &rateLimiter{
		cfg:   cfg,
		admin: newBuckets(cfg.Admin), producer: newBuckets(cfg.Producer),
		receiver: newBuckets(cfg.Receiver), authFails: newBuckets(cfg.AuthFailures),
	}
}

// perPrincipal runs after authentication: it takes a token from the
// bucket of the principal's id (never of its secret, so every key of a
// receiver shares one bucket and a rotated key gets no fresh one).
func (l *rateLimiter) perPrincipal(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := l.take(c, 1); err != nil {
			return err
		}
		return next(c)
	}
}

// take takes n tokens from the bucket of c's principal, or none and
// answers errRateLimited.
func (l *rateLimiter) take(c echo.Context, n int) error {
	b, key := l.bucketOf(principalOf(c))
	if b == nil || b.rate.off() || n <= 0 {
		return nil
	}
	lim, now := b.get(key), time.Now()
	h := c.Response().Header()
	if !lim.AllowN(now, n) {
		setRetryAfter(h, b.rate, lim, now, n)
		setRateHeaders(h, b.rate, lim, now)
		return errRateLimited
	}
	setRateHeaders(h, b.rate, lim, now)
	return nil
}

// takeBatch takes the tokens of a batch request of count notifications,
// beyond the one its request took: the limit counts notifications, however
// they are sent. A batch larger than the bucket can ever hold is refused
// as too large, not told to wait.
func (l *rateLimiter) takeBatch(c echo.Context, count int) error {
	if b, _ := l.bucketOf(principalOf(c)); b != nil && !b.rate.off() && count > b.rate.Burst {
		return fieldError("notifications", fmt.Sprintf(
			"holds %d notifications, more than this token's rate limit lets through at once (%d); send fewer per request", count, b.rate.Burst))
	}
	return l.take(c, count-1)
}

// bucketOf is p's bucket set and key in it (nil: p has no bucket).
func (l *rateLimiter) bucketOf(p *principal) (*buckets, string) {
	switch p.role {
	case roleAdmin:
		return l.admin, "admin"
	case roleProducer:
		return l.producer, p.producerID
	case roleReceiver:
		return l.receiver, p.receiver.String()
	}
	return nil, ""
}

// authFailures runs before authentication. Every failed authentication
// takes a token from the client IP's bucket; an IP whose bucket is empty is
// refused before its token is even looked at, so guessing stops there
// whether or not the next guess would be right.
func (l *rateLimiter) authFailures(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		b := l.authFails
		if b.rate.off() {
			return next(c)
		}
		lim, now := b.get(ipKey(c.RealIP())), time.Now()
		if lim.TokensAt(now) < 1 {
			h := c.Response().Header()
			setRetryAfter(h, b.rate, lim, now, 1)
			setRateHeaders(h, b.rate, lim, now)
			return errRateLimited
		}
		err := next(c)
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
			lim.AllowN(time.Now(), 1)
		}
		return err
	}
}

// ipKey groups IPv6 clients by /64, the block one host usually holds, so
// one attacker cannot get a fresh bucket per address.
func ipKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// setRateHeaders sets the IETF draft's RateLimit-Limit (the burst),
// RateLimit-Remaining (tokens left) and RateLimit-Reset (seconds until the
// bucket is full again).
func setRateHeaders(h http.Header, r Rate, lim *rate.Limiter, now time.Time) {
	tokens := lim.TokensAt(now)
	h.Set("RateLimit-Limit", strconv.Itoa(r.Burst))
	h.Set("RateLimit-Remaining", strconv.Itoa(int(max(0, math.Floor(tokens)))))
	h.Set("RateLimit-Reset", strconv.Itoa(ceilSeconds((float64(r.Burst)-tokens)/r.PerSecond)))
}

// setRetryAfter sets Retry-After to the seconds until the bucket holds n
// tokens.
func setRetryAfter(h http.Header, r Rate, lim *rate.Limiter, now time.Time, n int) {
	h.Set("Retry-After", strconv.Itoa(max(1, ceilSeconds((float64(n)-lim.TokensAt(now))/r.PerSecond))))
}

func ceilSeconds(s float64) int {
	if s <= 0 || math.IsNaN(s) {
		return 0
	}
	return int(math.Ceil(s))
}

// maxBuckets bounds a bucket set's memory: past it, idle buckets (full
// ones, which forget nothing by going) are dropped, and if every bucket is
// busy, new keys share one overflow bucket until some go idle.
const maxBuckets = 100_000

type buckets struct {
	rate     Rate
	mu       sync.Mutex
	m        map[string]*rate.Limiter
	overflow *rate.Limiter
}

func newBuckets(r Rate) *buckets {
	return &buckets{rate: r, m: map[string]*rate.Limiter{}, overflow: rate.NewLimiter(rate.Limit(r.PerSecond), r.Burst)}
}

func (b *buckets) get(key string) *rate.Limiter {
	b.mu.Lock()
	defer b.mu.Unlock()
	if l, ok := b.m[key]; ok {
		return l
	}
	if len(b.m) >= maxBuckets {
		b.sweep(time.Now())
		if len(b.m) >= maxBuckets {
			return b.overflow
		}
	}
	l := rate.NewLimiter(rate.Limit(b.rate.PerSecond), b.rate.Burst)
	b.m[key] = l
	return l
}

// sweep drops full buckets; b.mu is held.
func (b *buckets) sweep(now time.Time) {
	for k, l := range b.m {
		if l.TokensAt(now) >= float64(b.rate.Burst) {
			delete(b.m, k)
		}
	}
}
