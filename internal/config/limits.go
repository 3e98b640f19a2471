package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// RateLimit is a token bucket: PerSecond requests per second on average,
// up to Burst at once. The zero value means no limit.
type RateLimit struct {
	PerSecond float64
	Burst     int
}

// Off reports whether the limit is disabled.
func (r RateLimit) Off() bool { return r.PerSecond <= 0 }

// ErrRateLimitSyntax: a rate limit setting is not "off" or "<per second>/<burst>".
var ErrRateLimitSyntax = errors.New(`must be "off" or "<requests per second>/<burst>", like "50/100"`)

// ParseRateLimit reads "<requests per second>/<burst>" (the rate may be a
// fraction, like 0.5/10) or "off".
func ParseRateLimit(s string) (RateLimit, error) {
	s = strings.TrimSpace(s)
	if s == "off" || s == "0" {
		return RateLimit{}, nil
	}
	rate, burst, ok := strings.Cut(s, "/")
	if !ok {
		return RateLimit{}, ErrRateLimitSyntax
	}
	r, err := strconv.ParseFloat(strings.TrimSpace(rate), 64)
	if err != nil || !(r > 0 && r <= 1e9) { // also refuses NaN
		return RateLimit{}, ErrRateLimitSyntax
	}
	b, err := strconv.Atoi(strings.TrimSpace(burst))
	if err != nil || b < 1 || b > 1e9 {
		return RateLimit{}, ErrRateLimitSyntax
	}
	return RateLimit{PerSecond: r, Burst: b}, nil
}

// String is the setting's syntax, so a parsed limit prints as it was given.
func (r RateLimit) String() string {
	if r.Off() {
		return "off"
	}
	return strconv.FormatFloat(r.PerSecond, 'g', -1, 64) + "/" + strconv.Itoa(r.Burst)
}

// ParsePrefixes reads a comma-separated list of CIDR prefixes or single
// addresses (NOTIFYD_TRUSTED_PROXIES).
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR prefix nor an IP address", f)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// rawLimits holds the limit settings as given, until parse checks them.
type rawLimits struct {
	admin, producer, receiver, authFailures string
	proxies, requestTimeout                 string
	statementTimeout, listMaxBytes          string
}

// define declares the limit settings with the same str helper as the rest.
func (raw *rawLimits) define(str func(p *string, flagName, envName, def, usage string), c *Config) {
	str(&c.OpsAddr, "ops-addr", "NOTIFYD_OPS_ADDR", "127.0.0.1:9090", "ops listen address: /healthz, /readyz with detail, /metrics")
	str(&raw.admin, "rate-limit-admin", "NOTIFYD_RATE_LIMIT_ADMIN", "10000/20000", `requests per second/burst for the admin token per API process ("off": none)`)
	str(&raw.producer, "rate-limit-producer", "NOTIFYD_RATE_LIMIT_PRODUCER", "10000/20000", "requests per second/burst for each producer per API process")
	str(&raw.receiver, "rate-limit-receiver", "NOTIFYD_RATE_LIMIT_RECEIVER", "10000/20000", "requests per second/burst for each receiver (all its keys) per API process")
	str(&raw.authFailures, "rate-limit-auth-failures", "NOTIFYD_RATE_LIMIT_AUTH_FAILURES", "10/100", "failed authentications per second/burst per client IP per API process")
	str(&raw.proxies, "trusted-proxies", "NOTIFYD_TRUSTED_PROXIES", "", "comma-separated CIDRs of proxies whose X-Forwarded-For names the client IP")
	str(&raw.requestTimeout, "request-timeout", "NOTIFYD_REQUEST_TIMEOUT", "30s", "deadline of one API request")
	str(&raw.statementTimeout, "statement-timeout", "NOTIFYD_STATEMENT_TIMEOUT", "60s", "Postgres statement_timeout sent at connect (0: not sent, e.g. behind a transaction-mode PgBouncer)")
	str(&raw.listMaxBytes, "list-max-bytes", "NOTIFYD_LIST_MAX_BYTES", strconv.Itoa(4<<20), "payload bytes in one listing page before it ends with a cursor")
}

// parse checks the limit settings into c, each error under its variable.
func (raw *rawLimits) parse(c *Config, errs *settingErrors) {
	var err error
	c.RateLimitAdmin, err = ParseRateLimit(raw.admin)
	errs.check("NOTIFYD_RATE_LIMIT_ADMIN", err)
	c.RateLimitProducer, err = ParseRateLimit(raw.producer)
	errs.check("NOTIFYD_RATE_LIMIT_PRODUCER", err)
	c.RateLimitReceiver, err = ParseRateLimit(raw.receiver)
	errs.check("NOTIFYD_RATE_LIMIT_RECEIVER", err)
	c.RateLimitAuthFailures, err = ParseRateLimit(raw.authFailures)
	errs.check("NOTIFYD_RATE_LIMIT_AUTH_FAILURES", err)
	c.TrustedProxies, err = ParsePrefixes(raw.proxies)
	errs.check("NOTIFYD_TRUSTED_PROXIES", err)
	c.RequestTimeout, err = time.ParseDuration(raw.requestTimeout)
	if err == nil && c.RequestTimeout < time.Second {
		err = errors.New("must be at least 1s")
	}
	errs.check("NOTIFYD_REQUEST_TIMEOUT", err)
	c.StatementTimeout, err = time.ParseDuration(raw.statementTimeout)
	if err == nil && c.StatementTimeout != 0 && c.StatementTimeout < time.Second {
		err = errors.New("must be 0 or at least 1s")
	}
	errs.check("NOTIFYD_STATEMENT_TIMEOUT", err)
	c.ListMaxBytes, err = strconv.Atoi(raw.listMaxBytes)
	if err == nil && c.ListMaxBytes < 1<<10 {
		err = errors.New("must be at least 1024")
	}
	errs.check("NOTIFYD_LIST_MAX_BYTES", err)
}
