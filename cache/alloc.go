package cache

import (
	"net/netip"

	"github.com/miekg/dns"
)

// slab hands out values of T from blocks: one allocation per block instead
// of one per value, and no rounding of each value up to a size class. A
// block stays alive as long as any value in it, which costs nothing when
// the values all live as long as one snapshot.
type slab[T any] struct {
	block []T
}

// The length of a slab's blocks: small first, so that a small zone keeps
// little, then up to maxSlabBlock values.
const (
	minSlabBlock = 16
	maxSlabBlock = 512
)

// take returns n zero values, contiguous and clipped: an append to them
// copies instead of writing into the next ones.
func (s *slab[T]) take(n int) []T {
	if cap(s.block)-len(s.block) < n {
		size := min(max(2*cap(s.block), minSlabBlock), maxSlabBlock)
		s.block = make([]T, 0, max(n, size))
	}
	start := len(s.block)
	s.block = s.block[:start+n]
	return s.block[start : start+n : start+n]
}

// new returns one zero value.
func (s *slab[T]) new() *T { return &s.take(1)[0] }

// records allocates the records of one snapshot, and what they point to,
// from slabs: a fleet has tens of thousands of them, all built at once and
// dropped with the snapshot.
type records struct {
	a    slab[dns.A]
	aaaa slab[dns.AAAA]
	srv  slab[dns.SRV]
	txt  slab[dns.TXT]
	// ips holds the addresses of the A and AAAA records.
	ips slab[byte]
	// strs holds the strings of the TXT records.
	strs slab[string]
}

// reserve starts r afresh with room for the records of one part: a, aaaa,
// srv and txt records (TXT lines of up to 255 bytes).
func (r *records) reserve(a, aaaa, srv, txt int) {
	*r = records{
		a:    slab[dns.A]{block: make([]dns.A, 0, a)},
		aaaa: slab[dns.AAAA]{block: make([]dns.AAAA, 0, aaaa)},
		srv:  slab[dns.SRV]{block: make([]dns.SRV, 0, srv)},
		txt:  slab[dns.TXT]{block: make([]dns.TXT, 0, txt)},
		ips:  slab[byte]{block: make([]byte, 0, 4*a+16*aaaa)},
		strs: slab[string]{block: make([]string, 0, txt)},
	}
}

func header(name string, rrtype uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: rrtype, Class: dns.ClassINET, Ttl: ttl}
}

// address returns the A record of an IPv4 address or the AAAA record of an
// IPv6 one.
func (r *records) address(name string, addr netip.Addr, ttl uint32) dns.RR {
	if addr.Is4() {
		rr, ip := r.a.new(), r.ips.take(4)
		a := addr.As4()
		copy(ip, a[:])
		*rr = dns.A{Hdr: header(name, dns.TypeA, ttl), A: ip}
		return rr
	}
	rr, ip := r.aaaa.new(), r.ips.take(16)
	a := addr.As16()
	copy(ip, a[:])
	*rr = dns.AAAA{Hdr: header(name, dns.TypeAAAA, ttl), AAAA: ip}
	return rr
}

// service returns an SRV record: priority 0, weight 1.
func (r *records) service(name string, ttl uint32, port uint16, target string) dns.RR {
	rr := r.srv.new()
	*rr = dns.SRV{Hdr: header(name, dns.TypeSRV, ttl), Priority: 0, Weight: 1, Port: port, Target: target}
	return rr
}

// text returns the TXT record of a line of text, which it overwrites (see
// txtStrings).
func (r *records) text(name string, ttl uint32, text []byte) dns.RR {
	rr := r.txt.new()
	*rr = dns.TXT{Hdr: header(name, dns.TypeTXT, ttl), Txt: r.txtStrings(text)}
	return rr
}

// txtStrings makes text safe for a TXT record, in place, and cuts it into
// strings of at most 255 bytes, which share one allocation. miekg/dns reads
// backslashes in TXT strings as escapes, and the line is for humans:
// anything but printable ASCII becomes '?', so that one byte of text is one
// byte on the wire.
func (r *records) txtStrings(text []byte) []string {
	for i, c := range text {
		if c < 0x20 || c > 0x7e || c == '\\' {
			text[i] = '?'
		}
	}
	rest := string(text)
	out := r.strs.take(max(1, (len(rest)+maxTXTString-1)/maxTXTString))
	for i := range out {
		n := min(len(rest), maxTXTString)
		out[i], rest = rest[:n], rest[n:]
	}
	return out
}
