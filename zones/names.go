package zones

import (
	"net"
	"net/url"
	"strconv"

	"github.com/miekg/dns"
)

// canonicalName returns name fully qualified and in lower case, the form the
// resolver matches queries against.
func canonicalName(name string) string {
	return dns.CanonicalName(name)
}

// validName reports whether s is a domain name below the root, written with
// letters, digits, '-', '_' and '.' only. dns.IsDomainName alone accepts
// spaces and escapes, which in a zone file are typos.
func validName(s string) bool {
	if s == "" || s == "." {
		return false
	}
	if _, ok := dns.IsDomainName(s); !ok {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

// validZone reports whether s can be the zone.
func validZone(s string) bool { return validName(s) }

// validLabel reports whether s is a lower-case DNS label (RFC 1123 host
// label): it becomes one label of the names the server answers.
func validLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !isLowerAlnum(c) && c != '-' {
			return false
		}
	}
	return true
}

// validDatacenter reports whether s is a Consul datacenter name: letters,
// digits, '-' and '_' (Consul lower-cases it).
func validDatacenter(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !isAlnum(c) && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// validHTTPAddr reports whether s is a Consul HTTP address as consul/api
// takes it: "host:port", "http://host:port" or "https://host:port".
func validHTTPAddr(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Opaque != "" {
		// No scheme: "host:port" (url.Parse reads "host:8500" as an
		// opaque URL with scheme "host").
		return validHostPort(s)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return false
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return false
	}
	return validHostPort(u.Host)
}

// validHostPort reports whether s is "host:port" with a host and a port from
// 1 to 65535.
func validHostPort(s string) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return false
	}
	for i := range len(host) {
		if c := host[i]; c <= ' ' || c == '/' || c >= 0x7f {
			return false
		}
	}
	n, err := strconv.ParseUint(port, 10, 16)
	return err == nil && n > 0
}

// firstLabelUnder returns the label of name directly under zone; name must be
// strictly inside zone, both canonical.
func firstLabelUnder(zone, name string) string {
	labels := dns.SplitDomainName(name)
	return labels[len(labels)-dns.CountLabel(zone)-1]
}

func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

func isAlnum(c byte) bool { return isLowerAlnum(c) || 'A' <= c && c <= 'Z' }
