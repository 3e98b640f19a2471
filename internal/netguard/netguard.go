// Package netguard keeps outgoing callback requests away from addresses that
// only make sense from inside our own network (SSRF protection).
//
// Two layers are needed because either alone is bypassable:
//
//   - [Policy.ValidateURL] rejects bad callback URLs when they are registered,
//     so users get an immediate, explainable error. It never resolves DNS,
//     because an answer obtained now says nothing about the answer at delivery
//     time.
//   - [Policy.Control] runs inside net.Dialer after DNS resolution, on the exact
//     address the socket is about to connect to. This is the check that holds
//     against DNS rebinding and against names that resolve to private
//     addresses.
//
// Control only sees the address the dialer connects to. If the HTTP transport
// uses a proxy (http.ProxyFromEnvironment picks one up from HTTP_PROXY), that
// address is the proxy's, and the callback host is resolved by the proxy,
// outside this package's reach. Delivery transports must set Proxy to nil.
//
// It decides which addresses may be dialled; it must not send requests or
// know about receivers: callers build their transports with it.
package netguard

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/net/idna"
)

var (
	// ErrForbiddenTarget reports a destination address the policy refuses;
	// the error is a *TargetError naming the address and its kind.
	ErrForbiddenTarget = errors.New("callback target is not allowed")
	// ErrInvalidURL reports a callback URL that is malformed or not http(s).
	ErrInvalidURL = errors.New("invalid callback URL")
)

// TargetError is a refused destination. Its text names the address, what
// kind of address it is and the policy's Hint, so that whoever reads it
// (an API caller, a producer, a receiver looking at a recorded attempt)
// learns why and how to allow it, without knowing this package.
type TargetError struct {
	Target string // the address or host name refused
	Kind   string // "loopback", "private", "link-local", ...
	Hint   string // Policy.Hint
}

func (e *TargetError) Error() string {
	article := "a"
	if e.Kind != "" && strings.ContainsAny(e.Kind[:1], "aeiou") {
		article = "an"
	}
	msg := e.Target + " is " + article + " " + e.Kind + " address"
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

// Unwrap makes errors.Is(err, ErrForbiddenTarget) hold.
func (e *TargetError) Unwrap() error { return ErrForbiddenTarget }

// addrKind names the kind of a non-public address for TargetError.
func addrKind(ip netip.Addr) string {
	switch {
	case ip.IsLoopback():
		return "loopback"
	case ip.IsPrivate():
		return "private"
	case ip.IsLinkLocalUnicast():
		return "link-local"
	case ip.IsUnspecified():
		return "unspecified"
	case ip.IsMulticast(), ip.IsInterfaceLocalMulticast(), ip.IsLinkLocalMulticast():
		return "multicast"
	case cgnat.Contains(ip):
		return "shared (CGNAT)"
	}
	return "reserved, non-public"
}

// cgnat is the shared address space carriers use (RFC 6598).
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// MaxURLLength bounds callback URLs; longer ones are refused by ValidateURL.
const MaxURLLength = 2048

// Policy decides which destination IPs may be dialled. The zero value blocks
// every non-public address.
type Policy struct {
	// AllowPrivate lifts all address checks. Meant for development and tests.
	AllowPrivate bool
	// Allow lists exceptions: addresses inside these prefixes are allowed even
	// if non-public. IPv4 prefixes also match the IPv4-mapped, NAT64 and 6to4
	// spellings of the same addresses, since those reach the same host.
	Allow []netip.Prefix
	// Hint ends every refusal's text: how whoever reads it may allow such
	// addresses (notifyd's setting, or the Go client's option).
	Hint string
}

// ServerHint is the Hint of notifyd's own policy (NOTIFYD_ALLOW_PRIVATE_TARGETS).
const ServerHint = "set NOTIFYD_ALLOW_PRIVATE_TARGETS=true (or a CIDR list such as 127.0.0.0/8) for development"

// blocked4 are IPv4 ranges that are not publicly routable unicast. They are
// package variables so that CheckAddr, which runs on every connection, does
// no parsing and no allocation.
var blocked4 = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network", includes unspecified
	netip.MustParsePrefix("10.0.0.0/8"),      // RFC 1918
	netip.MustParsePrefix("100.64.0.0/10"),   // CGNAT shared space
	netip.MustParsePrefix("127.0.0.0/8"),     // loopback
	netip.MustParsePrefix("169.254.0.0/16"),  // link-local, incl. cloud metadata 169.254.169.254
	netip.MustParsePrefix("172.16.0.0/12"),   // RFC 1918
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // TEST-NET-1
	netip.MustParsePrefix("192.88.99.0/24"),  // deprecated 6to4 relay anycast
	netip.MustParsePrefix("192.168.0.0/16"),  // RFC 1918
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // TEST-NET-2
	netip.MustParsePrefix("203.0.113.0/24"),  // TEST-NET-3
	netip.MustParsePrefix("224.0.0.0/4"),     // multicast
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, incl. broadcast 255.255.255.255
}

// globalUnicast6 is the only IPv6 block IANA hands out for global unicast;
// everything outside it (::, ::1, IPv4-compatible ::/96, 100::/64 discard,
// 64:ff9b:1::/48 local NAT64, fc00::/7 ULA, fe80::/10 link-local, fec0::/10
// site-local, ff00::/8 multicast, ...) is non-public by construction. Listing
// the complement instead would silently allow whatever a future RFC reserves.
var globalUnicast6 = netip.MustParsePrefix("2000::/3")

// blocked6 are the non-public ranges carved out of 2000::/3.
var blocked6 = []netip.Prefix{
	netip.MustParsePrefix("2001::/23"),     // IETF protocol assignments: Teredo, benchmarking, ORCHID
	netip.MustParsePrefix("2001:db8::/32"), // documentation
	netip.MustParsePrefix("3fff::/20"),     // documentation (RFC 9637)
}

// Prefixes whose addresses carry an IPv4 destination; such an address is as
// reachable as the IPv4 address it embeds, so it is judged by that address.
var (
	nat64WellKnown = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour      = netip.MustParsePrefix("2002::/16")
)

// ParsePolicy parses the NOTIFYD_ALLOW_PRIVATE_TARGETS value: "", "false" or
// "0" block every non-public address; "true" or "1" set AllowPrivate;
// anything else is a comma-separated list of CIDRs or single IPs
// ("127.0.0.1/32,10.0.0.0/8,::1") that become Allow.
func ParsePolicy(s string) (Policy, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "", s == "0", strings.EqualFold(s, "false"):
		return Policy{}, nil
	case s == "1", strings.EqualFold(s, "true"):
		return Policy{AllowPrivate: true}, nil
	}
	var p Policy
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue // tolerate "a,,b" and a trailing comma
		}
		pfx, err := parseAllowEntry(entry)
		if err != nil {
			return Policy{}, err
		}
		p.Allow = append(p.Allow, pfx)
	}
	if len(p.Allow) == 0 {
		return Policy{}, fmt.Errorf("netguard: allow list %q has no entries", s)
	}
	return p, nil
}

func parseAllowEntry(entry string) (netip.Prefix, error) {
	var pfx netip.Prefix
	if strings.Contains(entry, "/") {
		var err error
		pfx, err = netip.ParsePrefix(entry)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("netguard: allow entry %q is not a CIDR: %w", entry, err)
		}
		// "10.1.2.3/8" most likely meant a single host; allowing the whole
		// /8 on a typo would be a silent widening of the exception.
		if pfx != pfx.Masked() {
			return netip.Prefix{}, fmt.Errorf("netguard: allow entry %q has host bits set (did you mean %s?)", entry, pfx.Masked())
		}
	} else {
		addr, err := netip.ParseAddr(entry)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("netguard: allow entry %q is not an IP address or CIDR: %w", entry, err)
		}
		if addr.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("netguard: allow entry %q must not carry a zone", entry)
		}
		pfx = netip.PrefixFrom(addr, addr.BitLen())
	}
	// CheckAddr unmaps ::ffff:a.b.c.d before matching, so a mapped entry
	// would never match; store it in the form it will be compared with.
	if a := pfx.Addr(); a.Is4In6() && pfx.Bits() >= 96 {
		pfx = netip.PrefixFrom(a.Unmap(), pfx.Bits()-96)
	}
	return pfx, nil
}

// CheckAddr returns nil if ip may be dialled, otherwise an error wrapping
// ErrForbiddenTarget. It does not allocate when the address is allowed.
func (p Policy) CheckAddr(ip netip.Addr) error {
	if p.AllowPrivate {
		return nil
	}
	if !ip.IsValid() {
		return fmt.Errorf("%w: invalid address", ErrForbiddenTarget)
	}
	// Zones only pick an interface; Prefix.Contains never matches a zoned
	// address, so drop the zone before any comparison.
	orig := ip
	ip = ip.WithZone("")
	if p.allowed(ip) {
		return nil
	}
	target := ip
	if v4, ok := embeddedIPv4(ip); ok {
		if p.allowed(v4) {
			return nil
		}
		target = v4
	}
	if isPublic(target) {
		return nil
	}
	return &TargetError{Target: orig.String(), Kind: addrKind(target), Hint: p.Hint}
}

func (p Policy) allowed(ip netip.Addr) bool {
	for _, pfx := range p.Allow {
		if pfx.Contains(ip) {
			return true
		}
	}
	return false
}

// embeddedIPv4 extracts the IPv4 destination of IPv6 forms that are routed to
// an IPv4 host: IPv4-mapped, NAT64 well-known prefix and 6to4.
func embeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	if !ip.Is6() {
		return netip.Addr{}, false
	}
	if ip.Is4In6() {
		return ip.Unmap(), true
	}
	b := ip.As16()
	switch {
	case nat64WellKnown.Contains(ip):
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), true
	case sixToFour.Contains(ip):
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), true
	}
	return netip.Addr{}, false
}

func isPublic(ip netip.Addr) bool {
	if ip.Is4() {
		for _, pfx := range blocked4 {
			if pfx.Contains(ip) {
				return false
			}
		}
		return true
	}
	if !globalUnicast6.Contains(ip) {
		return false
	}
	for _, pfx := range blocked6 {
		if pfx.Contains(ip) {
			return false
		}
	}
	return true
}

// Control is a net.Dialer Control function. It sees the resolved address the
// socket is about to connect to, so it also covers names that resolve to
// private addresses and DNS answers that change after ValidateURL ran.
func (p Policy) Control(network, address string, _ syscall.RawConn) error {
	if p.AllowPrivate {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		// Not an IP socket (unix, or something unexpected): nothing here can
		// prove it is safe, so refuse.
		return fmt.Errorf("%w: cannot check %s address %q", ErrForbiddenTarget, network, address)
	}
	return p.CheckAddr(ap.Addr())
}

// ValidateURL checks a callback URL without resolving DNS: it must be an
// absolute http or https URL of at most MaxURLLength bytes, with a host, no
// userinfo, and a port in 1..65535 if one is given. A host that is an IP
// literal in any spelling a browser or the system resolver accepts (decimal
// "2130706433", hex "0x7f.0.0.1", octal "0177.0.0.1", short "127.1",
// full-width digits, IPv4-mapped IPv6, ...) is normalised and checked with
// CheckAddr; "localhost" and its variants are refused unless AllowPrivate.
//
// The returned URL has its host rewritten to the normalised form, so what is
// dialled is what was checked. Errors wrap ErrInvalidURL or
// ErrForbiddenTarget. Error messages do not echo the URL, which may carry
// credentials in its query.
func (p Policy) ValidateURL(raw string) (*url.URL, error) {
	if len(raw) > MaxURLLength {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrInvalidURL, MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // the url.Error text repeats the whole URL
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%w: scheme must be http or https", ErrInvalidURL)
	}
	if u.Opaque != "" || u.Host == "" {
		return nil, fmt.Errorf("%w: missing host", ErrInvalidURL)
	}
	if u.User != nil {
		// Credentials in URLs end up in logs and the delivery history, and
		// "http://allowed.example@10.0.0.1/" is a classic way to confuse
		// humans reviewing a URL.
		return nil, fmt.Errorf("%w: userinfo is not allowed", ErrInvalidURL)
	}
	if port := u.Port(); port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%w: port out of range", ErrInvalidURL)
		}
	}

	host, err := p.checkHost(u.Hostname(), strings.HasPrefix(u.Host, "["))
	if err != nil {
		return nil, err
	}
	// An empty port ("host:/") means the default one; joinHostPort drops the
	// dangling colon.
	u.Host = joinHostPort(host, u.Port())
	return u, nil
}

func joinHostPort(host, port string) string {
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port == "" {
		return host
	}
	return host + ":" + port
}

// checkHost validates the host part and returns its normalised form.
func (p Policy) checkHost(host string, bracketed bool) (string, error) {
	if host == "" {
		return "", fmt.Errorf("%w: missing host", ErrInvalidURL)
	}
	if bracketed {
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.Is6() {
			return "", fmt.Errorf("%w: bad IPv6 literal", ErrInvalidURL)
		}
		if err := p.CheckAddr(ip); err != nil {
			return "", err
		}
		return ip.String(), nil
	}

	if !isASCII(host) {
		// net/http maps non-ASCII hosts through IDNA before dialling, and
		// IDNA turns e.g. full-width "１２７．０．０．１" into "127.0.0.1".
		// Apply the same mapping so the checks below see the real host.
		ascii, err := idna.Lookup.ToASCII(host)
		if err != nil {
			return "", fmt.Errorf("%w: bad internationalised host name", ErrInvalidURL)
		}
		host = ascii
	}
	host = strings.ToLower(host)
	if !validHostChars(host) {
		return "", fmt.Errorf("%w: host contains characters not allowed in a host name", ErrInvalidURL)
	}

	ip, isIP, err := parseIPv4Literal(host)
	if err != nil {
		return "", err
	}
	if isIP {
		if err := p.CheckAddr(ip); err != nil {
			return "", err
		}
		return ip.String(), nil
	}

	name := strings.TrimSuffix(host, ".")
	if name == "" || strings.HasPrefix(name, ".") || strings.Contains(name, "..") {
		return "", fmt.Errorf("%w: empty label in host name", ErrInvalidURL)
	}
	if !p.AllowPrivate && isLocalName(name) {
		return "", &TargetError{Target: name, Kind: "loopback", Hint: p.Hint}
	}
	return host, nil
}

// isLocalName reports names that resolve to this machine without DNS: RFC
// 6761 reserves localhost and everything under it, and Debian's /etc/hosts
// adds the ip6- aliases for ::1.
func isLocalName(name string) bool {
	switch name {
	case "localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback":
		return true
	}
	return strings.HasSuffix(name, ".localhost")
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// validHostChars accepts letters, digits, '-', '_' and '.'. url.Parse admits
// sub-delimiters such as ';' or '!' in hosts; no resolver needs them and they
// only widen what the literal checks must anticipate.
func validHostChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// parseIPv4Literal follows the WHATWG URL host parser: a host whose last label
// is numeric (decimal or 0x-hex) is an IPv4 address and must parse as one.
// That parser is a superset of inet_aton, which the cgo resolver uses, so it
// covers both what browsers and what the system resolver would dial. A
// numeric-looking host that fails to parse is invalid rather than a DNS
// name, because some resolver somewhere may still read it as an address.
func parseIPv4Literal(host string) (netip.Addr, bool, error) {
	parts := strings.Split(host, ".")
	if len(parts) > 1 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	if !looksNumeric(parts[len(parts)-1]) {
		return netip.Addr{}, false, nil
	}
	if len(parts) > 4 {
		return netip.Addr{}, false, errBadIPv4
	}
	nums := make([]uint64, len(parts))
	for i, part := range parts {
		n, ok := parseIPv4Number(part)
		if !ok {
			return netip.Addr{}, false, errBadIPv4
		}
		nums[i] = n
	}
	for _, n := range nums[:len(nums)-1] {
		if n > 255 {
			return netip.Addr{}, false, errBadIPv4
		}
	}
	// The last number fills all remaining bytes: "127.1" is 127.0.0.1 and
	// "2130706433" is 127.0.0.1 as well.
	last := nums[len(nums)-1]
	if last >= 1<<(8*(5-len(nums))) {
		return netip.Addr{}, false, errBadIPv4
	}
	v := last
	for i, n := range nums[:len(nums)-1] {
		v |= n << (8 * (3 - i))
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true, nil
}

var errBadIPv4 = fmt.Errorf("%w: malformed IPv4 address", ErrInvalidURL)

func looksNumeric(label string) bool {
	if label == "" {
		return false
	}
	if allIn(label, "0123456789") {
		return true
	}
	if len(label) >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X') {
		return allIn(label[2:], "0123456789abcdefABCDEF")
	}
	return false
}

// parseIPv4Number parses one label: 0x-prefixed hex, 0-prefixed octal, or
// decimal. "0x" alone is zero, as in WHATWG.
func parseIPv4Number(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	base := 10
	switch {
	case len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'):
		s, base = s[2:], 16
		if s == "" {
			return 0, true
		}
	case len(s) >= 2 && s[0] == '0':
		s, base = s[1:], 8
	}
	n, err := strconv.ParseUint(s, base, 32)
	if err != nil {
		return 0, false
	}
	return n, true
}

func allIn(s, set string) bool {
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(set, rune(s[i])) {
			return false
		}
	}
	return true
}
