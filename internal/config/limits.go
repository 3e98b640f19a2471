package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
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
