// Package callbackhosts decides whether a notification's callback URL
// override is allowed by its receiver's callback_hosts list. The API, the
// Go client and the worker all ask Allowed, so they agree.
//
// A nil list means no restriction (receivers created before the setting
// existed keep working); an empty, non-nil list allows no override at all.
//
// It must not resolve names or judge addresses: whether a host is public is
// internal/netguard's job, at dial time.
package callbackhosts

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// MaxPatterns bounds a receiver's list; it is mirrored into Redis and read
// on every override.
const MaxPatterns = 50

// ErrNotAllowed: the override's host matches none of the receiver's patterns.
var ErrNotAllowed = errors.New("callback_url host is not in the receiver's callback_hosts")

// Validate checks one pattern: a host name ("hooks.example.com") or a
// wildcard for its subdomains ("*.example.com", which does not match
// example.com itself). Patterns are lower case, without scheme or port.
func Validate(p string) error {
	name := strings.TrimPrefix(p, "*.")
	if name == "" || len(p) > 253 {
		return fmt.Errorf("%q: must be a host name or *.domain", p)
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("%q: empty or overlong label", p)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%q: only lower-case letters, digits, '-' and '_' in labels", p)
			}
		}
	}
	if strings.HasPrefix(p, "*.") && !strings.Contains(name, ".") {
		return fmt.Errorf("%q: a wildcard needs at least two labels after it", p)
	}
	return nil
}

// ValidateList checks a receiver's list.
func ValidateList(patterns []string) error {
	if len(patterns) > MaxPatterns {
		return fmt.Errorf("at most %d callback hosts", MaxPatterns)
	}
	for _, p := range patterns {
		if err := Validate(p); err != nil {
			return err
		}
	}
	return nil
}

// Match reports whether host (as in a URL, any case, no port) matches
// pattern: equal, or for "*.d" a subdomain of d at any depth.
func Match(pattern, host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if domain, ok := strings.CutPrefix(pattern, "*."); ok {
		return len(host) > len(domain)+1 && strings.HasSuffix(host, domain) && host[len(host)-len(domain)-1] == '.'
	}
	return host == pattern
}

// Allowed reports whether rawURL may be used as an override for a receiver
// with patterns. An empty rawURL (no override) is always allowed.
func Allowed(patterns []string, rawURL string) error {
	if rawURL == "" || patterns == nil {
		return nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotAllowed, err)
	}
	host := u.Hostname()
	for _, p := range patterns {
		if Match(p, host) {
			return nil
		}
	}
	return fmt.Errorf("%w: %q", ErrNotAllowed, host)
}
