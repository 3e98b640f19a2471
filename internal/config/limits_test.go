package config

import (
	"errors"
	"slices"
	"testing"
)

func TestParseRateLimit(t *testing.T) {
	tests := []struct {
		in   string
		want RateLimit
		err  bool
	}{
		{"50/100", RateLimit{50, 100}, false},
		{" 0.5 / 10 ", RateLimit{0.5, 10}, false},
		{"off", RateLimit{}, false},
		{"0", RateLimit{}, false},
		{"50", RateLimit{}, true},
		{"50/0", RateLimit{}, true},
		{"-1/10", RateLimit{}, true},
		{"NaN/10", RateLimit{}, true},
		{"Inf/10", RateLimit{}, true},
		{"10/x", RateLimit{}, true},
		{"", RateLimit{}, true},
	}
	for _, tt := range tests {
		got, err := ParseRateLimit(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseRateLimit(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
		if err != nil && !errors.Is(err, ErrRateLimitSyntax) {
			t.Errorf("ParseRateLimit(%q): error %v is not ErrRateLimitSyntax", tt.in, err)
		}
	}
}

// FuzzParseRateLimit: whatever the setting, the parser either refuses it or
// returns a limit that is off or positive and prints back to itself.
func FuzzParseRateLimit(f *testing.F) {
	for _, s := range []string{"50/100", "off", "0.5/1", "1e9/1000000000", "/", "1/-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRateLimit(s)
		if err != nil {
			return
		}
		if !r.Off() && (r.PerSecond <= 0 || r.Burst < 1) {
			t.Fatalf("%q: %+v", s, r)
		}
		again, err := ParseRateLimit(r.String())
		if err != nil || again != r {
			t.Fatalf("%q: %+v prints as %q, which parses as %+v, %v", s, r, r.String(), again, err)
		}
	})
}

func TestParsePrefixes(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  bool
	}{
		{"", nil, false},
		{"10.0.0.0/8, 192.168.1.7", []string{"10.0.0.0/8", "192.168.1.7/32"}, false},
		{"10.1.2.3/8", []string{"10.0.0.0/8"}, false},
		{"::ffff:10.0.0.1,2001:db8::/32", []string{"10.0.0.1/32", "2001:db8::/32"}, false},
		{"example.com", nil, true},
	}
	for _, tt := range tests {
		got, err := ParsePrefixes(tt.in)
		var s []string
		for _, p := range got {
			s = append(s, p.String())
		}
		if (err != nil) != tt.err || !slices.Equal(s, tt.want) {
			t.Errorf("ParsePrefixes(%q) = %v, %v; want %v, error %v", tt.in, s, err, tt.want, tt.err)
		}
	}
}
