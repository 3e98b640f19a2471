package netguard_test

import (
	"net/netip"
	"testing"

	"github.com/notifyd/notifyd/internal/netguard"
)

// FuzzValidateURL checks that ValidateURL never panics and that whatever it
// accepts is an http(s) URL whose host is not a forbidden address, and stays
// accepted when fed back in (the normalised form must not be looser than the
// input, or a stored URL could change meaning on re-validation).
func FuzzValidateURL(f *testing.F) {
	for _, seed := range []string{
		"https://hooks.example.com/notify",
		"http://127.0.0.1/",
		"http://0x7f.1/",
		"http://[::ffff:127.0.0.1]:8080/",
		"http://[fe80::1%25eth0]/",
		"http://１２７.０.０.１/",
		"http://user:pass@example.com/",
	} {
		f.Add(seed)
	}
	var p netguard.Policy
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := p.ValidateURL(raw)
		if err != nil {
			return
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			t.Fatalf("accepted %q with scheme %q", raw, u.Scheme)
		}
		if u.Host == "" || u.Hostname() == "" {
			t.Fatalf("accepted %q without a host", raw)
		}
		if u.User != nil {
			t.Fatalf("accepted %q with userinfo", raw)
		}
		if ip, err := netip.ParseAddr(u.Hostname()); err == nil {
			if err := p.CheckAddr(ip); err != nil {
				t.Fatalf("accepted %q whose host %s is forbidden: %v", raw, ip, err)
			}
		}
		if len(u.String()) > netguard.MaxURLLength {
			return // re-escaping can legitimately push it over the limit
		}
		again, err := p.ValidateURL(u.String())
		if err != nil {
			t.Fatalf("accepted %q but rejected its normalised form %q: %v", raw, u.String(), err)
		}
		if again.Host != u.Host {
			t.Fatalf("normalising %q is not stable: host %q then %q", raw, u.Host, again.Host)
		}
	})
}
