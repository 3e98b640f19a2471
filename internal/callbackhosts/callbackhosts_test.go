package callbackhosts

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestAllowed(t *testing.T) {
	list := []string{"hooks.example.com", "*.merchant.io"}
	for _, tc := range []struct {
		name     string
		patterns []string
		url      string
		ok       bool
	}{
		{"no override", list, "", true},
		{"nil list: unrestricted", nil, "https://anywhere.net/x", true},
		{"empty list: no override", []string{}, "https://hooks.example.com/x", false},
		{"exact", list, "https://hooks.example.com/x", true},
		{"exact with port and case", list, "https://HOOKS.Example.com:8443/x", true},
		{"trailing dot", list, "https://hooks.example.com./x", true},
		{"other host", list, "https://evil.com/x", false},
		{"suffix trick", list, "https://evilhooks.example.com/x", false},
		{"sub of exact", list, "https://a.hooks.example.com/x", false},
		{"wildcard sub", list, "https://api.merchant.io/x", true},
		{"wildcard deep", list, "https://a.b.merchant.io/x", true},
		{"wildcard apex", list, "https://merchant.io/x", false},
		{"wildcard suffix trick", list, "https://evilmerchant.io/x", false},
		{"userinfo trick", list, "https://hooks.example.com@evil.com/x", false},
		{"unparsable", list, "https://%zz/", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Allowed(tc.patterns, tc.url)
			if (err == nil) != tc.ok {
				t.Fatalf("Allowed(%v, %q) = %v, want ok=%v", tc.patterns, tc.url, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrNotAllowed) {
				t.Fatalf("err = %v, want ErrNotAllowed", err)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		p  string
		ok bool
	}{
		{"hooks.example.com", true}, {"*.example.com", true}, {"localhost", true},
		{"", false}, {"*", false}, {"*.com", false}, {"Hooks.example.com", false}, {"a..b", false},
		{"https://a.com", false}, {"a.com:443", false}, {"a.*.com", false}, {"*.*.com", false},
		{strings.Repeat("a", 64) + ".com", false},
	} {
		if err := Validate(tc.p); (err == nil) != tc.ok {
			t.Errorf("Validate(%q) = %v, want ok=%v", tc.p, err, tc.ok)
		}
	}
	if ValidateList(make([]string, MaxPatterns+1)) == nil {
		t.Error("an overlong list was accepted")
	}
}

// FuzzMatch: a match means the URL's host is the pattern or, for a
// wildcard, ends in "."+domain — never a mere suffix.
func FuzzMatch(f *testing.F) {
	f.Add("*.example.com", "https://a.example.com/")
	f.Add("hooks.example.com", "https://hooks.example.com.evil/")
	f.Add("*.a.b", "http://x@a.b/")
	f.Fuzz(func(t *testing.T, pattern, raw string) {
		if Validate(pattern) != nil {
			return
		}
		if Allowed([]string{pattern}, raw) != nil || raw == "" {
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("allowed an unparsable URL %q", raw)
		}
		host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
		if d, ok := strings.CutPrefix(pattern, "*."); ok {
			if !strings.HasSuffix(host, "."+d) {
				t.Fatalf("%q matched %q", pattern, host)
			}
		} else if host != pattern {
			t.Fatalf("%q matched %q", pattern, host)
		}
	})
}
