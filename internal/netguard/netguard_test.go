package netguard_test

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/netguard"
)

func TestCheckAddr(t *testing.T) {
	tests := []struct {
		addr    string
		blocked bool
	}{
		// loopback
		{"127.0.0.1", true},
		{"127.255.255.254", true},
		{"::1", true},
		// RFC 1918
		{"10.0.0.1", true},
		{"10.255.255.255", true},
		{"172.16.0.1", true},
		{"172.31.255.255", true},
		{"192.168.1.1", true},
		// RFC 4193 ULA
		{"fc00::1", true},
		{"fd12:3456:789a::1", true},
		// link-local, cloud metadata
		{"169.254.169.254", true},
		{"169.254.0.1", true},
		{"fe80::1", true},
		{"fe80::1%eth0", true},
		{"febf:ffff::1", true},
		// CGNAT
		{"100.64.0.1", true},
		{"100.127.255.255", true},
		// multicast
		{"224.0.0.1", true},
		{"239.255.255.250", true},
		{"ff02::1", true},
		{"ff0e::101", true},
		// unspecified, "this network", broadcast
		{"0.0.0.0", true},
		{"0.1.2.3", true},
		{"::", true},
		{"255.255.255.255", true},
		// IPv4-mapped IPv6 is judged by the IPv4 address
		{"::ffff:127.0.0.1", true},
		{"::ffff:10.0.0.1", true},
		{"::ffff:169.254.169.254", true},
		{"::ffff:8.8.8.8", false},
		// NAT64 well-known prefix embedding an IPv4 address
		{"64:ff9b::7f00:1", true},
		{"64:ff9b::a9fe:a9fe", true},
		{"64:ff9b::c0a8:101", true},
		{"64:ff9b::808:808", false},
		// 6to4 embedding an IPv4 address
		{"2002:7f00:1::1", true},
		{"2002:a00:1::", true},
		{"2002:c0a8:101:1::1", true},
		{"2002:808:808::1", false},
		// documentation, benchmarking, reserved
		{"192.0.0.1", true},
		{"192.0.2.1", true},
		{"198.18.0.1", true},
		{"198.19.255.255", true},
		{"198.51.100.7", true},
		{"203.0.113.9", true},
		{"240.0.0.1", true},
		{"2001:db8::1", true},
		{"2001:db8:ffff::1", true},
		// further non-public IPv6 space
		{"::127.0.0.1", true},  // deprecated IPv4-compatible
		{"2001::1", true},      // Teredo
		{"2001:2::1", true},    // benchmarking
		{"3fff::1", true},      // documentation (RFC 9637)
		{"64:ff9b:1::1", true}, // local-use NAT64
		{"fec0::1", true},      // deprecated site-local
		{"100::1", true},       // discard-only
		// public, including neighbours of blocked ranges
		{"8.8.8.8", false},
		{"1.1.1.1", false},
		{"2606:4700::1111", false},
		{"2a00:1450:4001:81b::200e", false},
		{"100.63.255.255", false},
		{"100.128.0.0", false},
		{"172.15.255.255", false},
		{"172.32.0.0", false},
		{"198.17.255.255", false},
		{"198.20.0.0", false},
		{"223.255.255.255", false},
	}
	var p netguard.Policy
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			err := p.CheckAddr(netip.MustParseAddr(tt.addr))
			if tt.blocked {
				if !errors.Is(err, netguard.ErrForbiddenTarget) {
					t.Fatalf("CheckAddr(%s) = %v, want ErrForbiddenTarget", tt.addr, err)
				}
				if !strings.Contains(err.Error(), netip.MustParseAddr(tt.addr).String()) {
					t.Errorf("error %q does not name the address", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("CheckAddr(%s) = %v, want nil", tt.addr, err)
			}
		})
	}
}

func TestCheckAddrZeroAddr(t *testing.T) {
	if err := (netguard.Policy{}).CheckAddr(netip.Addr{}); !errors.Is(err, netguard.ErrForbiddenTarget) {
		t.Fatalf("CheckAddr(zero) = %v, want ErrForbiddenTarget", err)
	}
}

func TestCheckAddrExceptions(t *testing.T) {
	tests := []struct {
		name    string
		policy  netguard.Policy
		addr    string
		allowed bool
	}{
		{"allow private lifts everything", netguard.Policy{AllowPrivate: true}, "169.254.169.254", true},
		{"allow private lifts v6 too", netguard.Policy{AllowPrivate: true}, "::1", true},
		{"single host", allow("127.0.0.1/32"), "127.0.0.1", true},
		{"single host only", allow("127.0.0.1/32"), "127.0.0.2", false},
		{"range", allow("10.0.0.0/8"), "10.20.30.40", true},
		{"range leaves others blocked", allow("10.0.0.0/8"), "192.168.0.1", false},
		{"mapped spelling of allowed v4", allow("127.0.0.1/32"), "::ffff:127.0.0.1", true},
		{"nat64 spelling of allowed v4", allow("10.0.0.0/8"), "64:ff9b::a00:1", true},
		{"6to4 spelling of allowed v4", allow("10.0.0.0/8"), "2002:a00:1::1", true},
		{"nat64 of other v4 stays blocked", allow("10.0.0.0/8"), "64:ff9b::7f00:1", false},
		{"v6 host", allow("::1/128"), "::1", true},
		{"v6 zone ignored", allow("fe80::/10"), "fe80::1%eth0", true},
		{"v6 range", allow("fd00::/8"), "fd00:1::5", true},
		{"v4 prefix does not match v6", allow("0.0.0.0/0"), "::1", false},
		{"public stays allowed", allow("10.0.0.0/8"), "8.8.8.8", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.CheckAddr(netip.MustParseAddr(tt.addr))
			if tt.allowed && err != nil {
				t.Fatalf("CheckAddr(%s) = %v, want nil", tt.addr, err)
			}
			if !tt.allowed && !errors.Is(err, netguard.ErrForbiddenTarget) {
				t.Fatalf("CheckAddr(%s) = %v, want ErrForbiddenTarget", tt.addr, err)
			}
		})
	}
}

func TestCheckAddrDoesNotAllocate(t *testing.T) {
	p := allow("10.0.0.0/8", "fd00::/8")
	for _, s := range []string{"8.8.8.8", "2606:4700::1111", "10.1.1.1", "::ffff:1.1.1.1", "64:ff9b::808:808", "fd00::1%eth0"} {
		addr := netip.MustParseAddr(s)
		allocs := testing.AllocsPerRun(100, func() { _ = p.CheckAddr(addr) })
		if allocs != 0 {
			t.Errorf("CheckAddr(%s) allocates %v times per call", s, allocs)
		}
	}
}

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		in      string
		want    netguard.Policy
		wantErr string // substring; the offending entry must be named
	}{
		{in: "", want: netguard.Policy{}},
		{in: "false", want: netguard.Policy{}},
		{in: "FALSE", want: netguard.Policy{}},
		{in: "0", want: netguard.Policy{}},
		{in: "  ", want: netguard.Policy{}},
		{in: "true", want: netguard.Policy{AllowPrivate: true}},
		{in: "True", want: netguard.Policy{AllowPrivate: true}},
		{in: "1", want: netguard.Policy{AllowPrivate: true}},
		{in: "127.0.0.1/32", want: allow("127.0.0.1/32")},
		{in: "127.0.0.1/32,10.0.0.0/8,::1", want: allow("127.0.0.1/32", "10.0.0.0/8", "::1/128")},
		{in: " 10.0.0.0/8 , 192.168.1.5 ,", want: allow("10.0.0.0/8", "192.168.1.5/32")},
		{in: "::ffff:127.0.0.1", want: allow("127.0.0.1/32")},
		{in: "::ffff:10.0.0.0/104", want: allow("10.0.0.0/8")},
		{in: "fd00::/8", want: allow("fd00::/8")},
		{in: "yes", wantErr: `"yes"`},
		{in: "10.0.0.0/8,nonsense", wantErr: `"nonsense"`},
		{in: "10.0.0.0/33", wantErr: `"10.0.0.0/33"`},
		{in: "10.1.2.3/8", wantErr: `"10.1.2.3/8"`},
		{in: "256.0.0.1", wantErr: `"256.0.0.1"`},
		{in: "fe80::1%eth0", wantErr: `"fe80::1%eth0"`},
		{in: ",", wantErr: "no entries"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := netguard.ParsePolicy(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParsePolicy(%q) error = %v, want one containing %s", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePolicy(%q) = %v", tt.in, err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("ParsePolicy(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestValidateURL(t *testing.T) {
	tests := []struct {
		name     string
		raw      string
		wantErr  error
		wantHost string // u.Host after normalisation, when accepted
	}{
		{"public name", "https://hooks.example.com/notify?x=1", nil, "hooks.example.com"},
		{"public name with port", "http://example.com:8080/x", nil, "example.com:8080"},
		{"upper case normalised", "HTTPS://Example.COM/x", nil, "example.com"},
		{"empty port means default", "http://example.com:/x", nil, "example.com"},
		{"trailing dot name", "http://example.com./", nil, "example.com."},
		{"underscore label", "http://my_host.example.com/", nil, "my_host.example.com"},
		{"public v4", "http://8.8.8.8/", nil, "8.8.8.8"},
		{"public v6", "http://[2606:4700::1111]:443/", nil, "[2606:4700::1111]:443"},
		{"public v4 in hex", "http://0x08080808/", nil, "8.8.8.8"},
		{"idn", "https://bücher.de/", nil, "xn--bcher-kva.de"},
		{"numeric-looking middle label", "http://0x7f.0.0.1.example.com/", nil, "0x7f.0.0.1.example.com"},

		// odd spellings of loopback and metadata addresses
		{"dotted decimal", "http://127.0.0.1/", netguard.ErrForbiddenTarget, ""},
		{"trailing dot", "http://127.0.0.1./", netguard.ErrForbiddenTarget, ""},
		{"plain decimal", "http://2130706433/", netguard.ErrForbiddenTarget, ""},
		{"hex dotted", "http://0x7f.0.0.1/", netguard.ErrForbiddenTarget, ""},
		{"hex upper", "http://0X7F.0.0.1/", netguard.ErrForbiddenTarget, ""},
		{"hex whole", "http://0x7f000001/", netguard.ErrForbiddenTarget, ""},
		{"octal dotted", "http://0177.0.0.1/", netguard.ErrForbiddenTarget, ""},
		{"octal whole", "http://017700000001/", netguard.ErrForbiddenTarget, ""},
		{"short two parts", "http://127.1/", netguard.ErrForbiddenTarget, ""},
		{"short three parts", "http://127.0.1/", netguard.ErrForbiddenTarget, ""},
		{"mixed bases", "http://0x7f.0.00.0x1/", netguard.ErrForbiddenTarget, ""},
		{"bare 0x is zero", "http://0x/", netguard.ErrForbiddenTarget, ""},
		{"zero", "http://0/", netguard.ErrForbiddenTarget, ""},
		{"metadata decimal", "http://2852039166/latest/meta-data/", netguard.ErrForbiddenTarget, ""},
		{"metadata hex", "http://0xa9fea9fe/", netguard.ErrForbiddenTarget, ""},
		{"metadata short", "http://169.254.43518/", netguard.ErrForbiddenTarget, ""},
		{"private short", "http://10.1/", netguard.ErrForbiddenTarget, ""},
		{"full-width digits", "http://１２７.０.０.１/", netguard.ErrForbiddenTarget, ""},
		{"ideographic full stops", "http://127。0。0。1/", netguard.ErrForbiddenTarget, ""},
		{"v6 loopback", "http://[::1]/", netguard.ErrForbiddenTarget, ""},
		{"v6 loopback long", "http://[0:0:0:0:0:0:0:1]:80/", netguard.ErrForbiddenTarget, ""},
		{"v6 mapped dotted", "http://[::ffff:127.0.0.1]/", netguard.ErrForbiddenTarget, ""},
		{"v6 mapped hex", "http://[::ffff:7f00:1]/", netguard.ErrForbiddenTarget, ""},
		{"v6 mapped metadata", "http://[::ffff:169.254.169.254]/", netguard.ErrForbiddenTarget, ""},
		{"v6 compatible", "http://[::127.0.0.1]/", netguard.ErrForbiddenTarget, ""},
		{"v6 nat64", "http://[64:ff9b::7f00:1]/", netguard.ErrForbiddenTarget, ""},
		{"v6 zone", "http://[fe80::1%25eth0]/", netguard.ErrForbiddenTarget, ""},
		{"v6 loopback zone", "http://[::1%25lo]:8080/", netguard.ErrForbiddenTarget, ""},
		{"v6 unspecified", "http://[::]/", netguard.ErrForbiddenTarget, ""},
		{"private v4", "https://192.168.0.10/", netguard.ErrForbiddenTarget, ""},

		// local names
		{"localhost", "http://localhost/", netguard.ErrForbiddenTarget, ""},
		{"localhost upper", "http://LOCALHOST:8080/", netguard.ErrForbiddenTarget, ""},
		{"localhost trailing dot", "http://localhost./", netguard.ErrForbiddenTarget, ""},
		{"localhost subdomain", "http://api.localhost/", netguard.ErrForbiddenTarget, ""},
		{"localhost full-width", "http://ｌｏｃａｌｈｏｓｔ/", netguard.ErrForbiddenTarget, ""},
		{"ip6-localhost", "http://ip6-localhost/", netguard.ErrForbiddenTarget, ""},

		// malformed
		{"too long", "https://example.com/" + strings.Repeat("a", netguard.MaxURLLength), netguard.ErrInvalidURL, ""},
		{"no scheme", "example.com/x", netguard.ErrInvalidURL, ""},
		{"scheme relative", "//example.com/x", netguard.ErrInvalidURL, ""},
		{"ftp", "ftp://example.com/", netguard.ErrInvalidURL, ""},
		{"file", "file:///etc/passwd", netguard.ErrInvalidURL, ""},
		{"gopher", "gopher://127.0.0.1:6379/_FLUSHALL", netguard.ErrInvalidURL, ""},
		{"opaque", "http:example.com", netguard.ErrInvalidURL, ""},
		{"empty host", "http:///x", netguard.ErrInvalidURL, ""},
		{"userinfo", "http://user:pass@example.com/", netguard.ErrInvalidURL, ""},
		{"user only", "http://user@example.com/", netguard.ErrInvalidURL, ""},
		{"empty userinfo", "http://@example.com/", netguard.ErrInvalidURL, ""},
		{"userinfo hiding private ip", "http://example.com@10.0.0.1/", netguard.ErrInvalidURL, ""},
		{"port zero", "http://example.com:0/", netguard.ErrInvalidURL, ""},
		{"port too big", "http://example.com:65536/", netguard.ErrInvalidURL, ""},
		{"port huge", "http://example.com:99999999999999999999/", netguard.ErrInvalidURL, ""},
		{"port not numeric", "http://example.com:http/", netguard.ErrInvalidURL, ""},
		{"five numeric parts", "http://1.2.3.4.5/", netguard.ErrInvalidURL, ""},
		{"octet too big", "http://256.0.0.1/", netguard.ErrInvalidURL, ""},
		{"last part too big", "http://127.0.0.256/", netguard.ErrInvalidURL, ""},
		{"decimal too big", "http://4294967296/", netguard.ErrInvalidURL, ""},
		{"bad octal", "http://08.0.0.1/", netguard.ErrInvalidURL, ""},
		{"bad hex", "http://0x7g.0.0.1/", netguard.ErrInvalidURL, ""},
		{"empty middle part", "http://127..1/", netguard.ErrInvalidURL, ""},
		{"empty label name", "http://example..com/", netguard.ErrInvalidURL, ""},
		{"only dot", "http://./", netguard.ErrInvalidURL, ""},
		{"sub-delims in host", "http://exa;mple.com/", netguard.ErrInvalidURL, ""},
		{"bracketed v4", "http://[127.0.0.1]/", netguard.ErrInvalidURL, ""},
		{"unbracketed v6", "http://::1/", netguard.ErrInvalidURL, ""},
		{"space", "http://exa mple.com/", netguard.ErrInvalidURL, ""},
		{"backslash", `http://127.0.0.1\@example.com/`, netguard.ErrInvalidURL, ""},
		{"control char", "http://example.com/\x00", netguard.ErrInvalidURL, ""},
		{"bad idn", "http://a\ufffdb.example/", netguard.ErrInvalidURL, ""},
	}
	var p netguard.Policy
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := p.ValidateURL(tt.raw)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ValidateURL(%q) = %v, %v; want error wrapping %v", tt.raw, u, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ValidateURL(%q) = %v", tt.raw, err)
			}
			if u.Host != tt.wantHost {
				t.Fatalf("ValidateURL(%q).Host = %q, want %q", tt.raw, u.Host, tt.wantHost)
			}
		})
	}
}

func TestValidateURLErrorDoesNotEchoURL(t *testing.T) {
	const secret = "s3cr3t-token"
	for _, raw := range []string{
		"http://example.com:99999/?token=" + secret,
		"http://exa mple.com/?token=" + secret,
		"http://127.0.0.1/?token=" + secret,
	} {
		_, err := netguard.Policy{}.ValidateURL(raw)
		if err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("ValidateURL(%q) = %v; want an error that does not contain the query", raw, err)
		}
	}
}

func TestValidateURLExceptions(t *testing.T) {
	tests := []struct {
		name     string
		policy   netguard.Policy
		raw      string
		wantErr  error
		wantHost string
	}{
		{"allow private accepts loopback", netguard.Policy{AllowPrivate: true}, "http://127.0.0.1:9000/", nil, "127.0.0.1:9000"},
		{"allow private accepts localhost", netguard.Policy{AllowPrivate: true}, "http://localhost:9000/", nil, "localhost:9000"},
		{"allow private normalises odd spelling", netguard.Policy{AllowPrivate: true}, "http://0x7f.1/", nil, "127.0.0.1"},
		{"allow private keeps zone", netguard.Policy{AllowPrivate: true}, "http://[fe80::1%25eth0]:80/", nil, "[fe80::1%eth0]:80"},
		{"allow private still checks syntax", netguard.Policy{AllowPrivate: true}, "http://1.2.3.4.5/", netguard.ErrInvalidURL, ""},
		{"allow list accepts its host", allow("127.0.0.1/32"), "http://127.0.0.1:9000/", nil, "127.0.0.1:9000"},
		{"allow list matches odd spelling", allow("127.0.0.1/32"), "http://2130706433:9000/", nil, "127.0.0.1:9000"},
		{"allow list matches mapped v6", allow("127.0.0.1/32"), "http://[::ffff:127.0.0.1]/", nil, "[::ffff:127.0.0.1]"},
		{"allow list is not allow private", allow("127.0.0.1/32"), "http://127.0.0.2/", netguard.ErrForbiddenTarget, ""},
		{"allow list does not cover localhost name", allow("127.0.0.1/32"), "http://localhost/", netguard.ErrForbiddenTarget, ""},
		{"allow list v6", allow("::1/128"), "http://[::1]:8080/", nil, "[::1]:8080"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := tt.policy.ValidateURL(tt.raw)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ValidateURL(%q) = %v, %v; want error wrapping %v", tt.raw, u, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ValidateURL(%q) = %v", tt.raw, err)
			}
			if u.Host != tt.wantHost {
				t.Fatalf("ValidateURL(%q).Host = %q, want %q", tt.raw, u.Host, tt.wantHost)
			}
		})
	}
}

func TestControl(t *testing.T) {
	tests := []struct {
		name    string
		network string
		address string
		wantErr bool
	}{
		{"public v4", "tcp4", "8.8.8.8:443", false},
		{"public v6", "tcp6", "[2606:4700::1111]:443", false},
		{"loopback", "tcp4", "127.0.0.1:80", true},
		{"mapped loopback", "tcp6", "[::ffff:127.0.0.1]:80", true},
		{"zoned link-local", "tcp6", "[fe80::1%eth0]:80", true},
		{"metadata", "tcp4", "169.254.169.254:80", true},
		{"unix socket", "unix", "/var/run/docker.sock", true},
		{"garbage", "tcp", "not-an-address", true},
	}
	var p netguard.Policy
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.Control(tt.network, tt.address, nil)
			if tt.wantErr && !errors.Is(err, netguard.ErrForbiddenTarget) {
				t.Fatalf("Control(%s, %s) = %v, want ErrForbiddenTarget", tt.network, tt.address, err)
			}
			if !tt.wantErr && err != nil {
				t.Fatalf("Control(%s, %s) = %v, want nil", tt.network, tt.address, err)
			}
		})
	}
}

// guardedClient is how delivery code is expected to use the package: the
// dialer checks every resolved address, and no proxy hides the real target.
func guardedClient(p netguard.Policy) *http.Client {
	d := &net.Dialer{Control: p.Control, Timeout: 5 * time.Second}
	return &http.Client{
		Transport: &http.Transport{Proxy: nil, DialContext: d.DialContext},
		Timeout:   10 * time.Second,
	}
}

func TestControlRealDial(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("reached"))
	}))
	t.Cleanup(srv.Close)
	srvURL, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	// The server listens on 127.0.0.1; "localhost" reaches it only through
	// name resolution, which ValidateURL never does and Control sees after.
	viaName := "http://localhost:" + srvURL.Port() + "/"

	tests := []struct {
		name      string
		policy    netguard.Policy
		url       string
		forbidden bool
	}{
		{"zero policy blocks loopback ip", netguard.Policy{}, srv.URL, true},
		{"zero policy blocks name resolving to loopback", netguard.Policy{}, viaName, true},
		{"allow list reaches loopback ip", allow("127.0.0.1/32"), srv.URL, false},
		{"allow private reaches loopback ip", netguard.Policy{AllowPrivate: true}, srv.URL, false},
		{"other allow entry still blocks", allow("10.0.0.0/8"), srv.URL, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := guardedClient(tt.policy)
			resp, err := client.Get(tt.url)
			if tt.forbidden {
				if err == nil {
					_ = resp.Body.Close()
					t.Fatalf("GET %s succeeded, want it blocked", tt.url)
				}
				if !errors.Is(err, netguard.ErrForbiddenTarget) {
					t.Fatalf("GET %s: %v, want an error wrapping ErrForbiddenTarget", tt.url, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("GET %s: %v", tt.url, err)
			}
			defer func() { _ = resp.Body.Close() }()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: status %d", tt.url, resp.StatusCode)
			}
		})
	}
}

func allow(prefixes ...string) netguard.Policy {
	var p netguard.Policy
	for _, s := range prefixes {
		p.Allow = append(p.Allow, netip.MustParsePrefix(s))
	}
	return p
}

// A refusal names the address, what kind of address it is and the policy's
// hint, and still matches ErrForbiddenTarget.
func TestRefusalNamesKindAndHint(t *testing.T) {
	t.Parallel()
	p := netguard.Policy{Hint: "set X=true for development"}
	tests := []struct{ url, want string }{
		{"http://127.0.0.1:9000/", "127.0.0.1 is a loopback address; set X=true for development"},
		{"http://[::1]/", "::1 is a loopback address; "},
		{"http://localhost/", "localhost is a loopback address; "},
		{"http://0x7f000001/", "127.0.0.1 is a loopback address; "},
		{"http://10.1.2.3/", "10.1.2.3 is a private address; "},
		{"http://[fd00::1]/", "fd00::1 is a private address; "},
		{"http://169.254.169.254/", "169.254.169.254 is a link-local address; "},
		{"http://0.0.0.0/", "0.0.0.0 is an unspecified address; "},
		{"http://100.64.0.1/", "100.64.0.1 is a shared (CGNAT) address; "},
		{"http://224.0.0.1/", "224.0.0.1 is a multicast address; "},
		{"http://192.0.2.1/", "192.0.2.1 is a reserved, non-public address; "},
		{"http://[::ffff:10.0.0.1]/", "::ffff:10.0.0.1 is a private address; "},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			_, err := p.ValidateURL(tt.url)
			var te *netguard.TargetError
			if !errors.Is(err, netguard.ErrForbiddenTarget) || !errors.As(err, &te) || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("ValidateURL(%s) = %v, want it to start %q", tt.url, err, tt.want)
			}
		})
	}
	if _, err := (netguard.Policy{}).ValidateURL("http://127.0.0.1/"); err == nil || err.Error() != "127.0.0.1 is a loopback address" {
		t.Errorf("without a hint: %v", err)
	}
}
