package e2e

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Helpers of the core scenarios (steady state, failover, no leader,
// promotion): what one name of the zone must answer, checked over UDP and
// TCP with one call.

// EndpointWant is one endpoint a name must answer: an address and port, and
// optionally the Patroni member and region its SRV target names.
type EndpointWant struct {
	// Addr is the endpoint's IP address, Port its port.
	Addr string
	Port int
	// Member, when set, is the Patroni member behind the endpoint: the SRV
	// target must then be "<member>.<Region>.<cluster>.<zone>" (as README
	// documents), compared case-insensitively.
	Member string
	// Region is the region label of the SRV target; checked with Member.
	Region string
}

// String returns "addr:port".
func (e EndpointWant) String() string { return net.JoinHostPort(e.Addr, strconv.Itoa(e.Port)) }

// NameWant is what one name of the zone must answer.
type NameWant struct {
	// Endpoints are the endpoints of A and SRV; none means NODATA (NOERROR,
	// no answer, the SOA in the authority section).
	Endpoints []EndpointWant
	// TXT are substrings the name's one TXT line must contain.
	TXT []string
	// ForbidAddrs are addresses that must never be answered (A, SRV
	// targets); seeing one is an ErrForbiddenAnswer, not a retry.
	ForbidAddrs []string
	// ForbidTXT are substrings the TXT line must never contain.
	ForbidTXT []string
	// Cluster is "<cluster>.<zone>", under which the SRV targets hang;
	// empty, the name without its first label (the region-pinned read
	// names, ro.<region>.<cluster>.<zone>, need it set).
	Cluster string
}

// ErrForbiddenAnswer marks an answer that must never be given, in any
// transient state: a test fails on it at once instead of waiting on.
var ErrForbiddenAnswer = errors.New("forbidden answer")

// CheckName checks name's A, SRV and TXT answers from server against want,
// over UDP and then TCP. SRV targets must ride in the additional section and
// resolve from server to the same address. It returns nil when every answer
// matches, an error wrapping ErrForbiddenAnswer when a forbidden one was
// seen, another error otherwise.
func CheckName(server, name string, want NameWant) error {
	for _, tcp := range []bool{false, true} {
		if err := checkNameOnce(server, name, want, tcp); err != nil {
			return fmt.Errorf("%s over %s: %w", name, transport(tcp), err)
		}
	}
	return nil
}

// WaitNames waits until every name in wants answers as wanted (CheckName),
// failing the test after timeout with the first mismatch, or at once when a
// forbidden answer is seen.
func WaitNames(t testing.TB, server string, timeout time.Duration, wants map[string]NameWant) {
	t.Helper()
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range wants {
			if !yield(n) {
				return
			}
		}
	})
	WaitFor(t, timeout, func() (bool, string) {
		t.Helper()
		for _, n := range names {
			if err := CheckName(server, n, wants[n]); err != nil {
				if errors.Is(err, ErrForbiddenAnswer) {
					t.Fatal(err)
				}
				return false, err.Error()
			}
		}
		return true, ""
	})
}

// CheckNegative checks that name answers qtype from server with rcode
// (NOERROR for NODATA, NXDOMAIN) and no records, AA set, and the zone's SOA
// in the authority section with a TTL of at most maxTTL, over UDP and TCP.
func CheckNegative(server, name string, qtype uint16, rcode int, maxTTL uint32) error {
	for _, tcp := range []bool{false, true} {
		resp, err := exchangeChecked(server, name, qtype, tcp)
		if err != nil {
			return fmt.Errorf("%s over %s: %w", name, transport(tcp), err)
		}
		if err := negative(resp, rcode, maxTTL); err != nil {
			return fmt.Errorf("%s %s over %s: %w", name, dns.TypeToString[qtype], transport(tcp), err)
		}
	}
	return nil
}

func transport(tcp bool) string {
	if tcp {
		return "tcp"
	}
	return "udp"
}

// exchangeChecked asks server for name and qtype and checks what every
// answer from the zone must be: a response with the question echoed as
// asked and AA set.
func exchangeChecked(server, name string, qtype uint16, tcp bool) (*dns.Msg, error) {
	resp, err := Exchange(server, NewQuery(name, qtype), tcp)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dns.TypeToString[qtype], err)
	}
	if !resp.Response {
		return nil, fmt.Errorf("%s: QR not set", dns.TypeToString[qtype])
	}
	if len(resp.Question) != 1 || resp.Question[0].Name != dns.Fqdn(name) || resp.Question[0].Qtype != qtype {
		return nil, fmt.Errorf("%s: question %v, want %s echoed as asked", dns.TypeToString[qtype], resp.Question, dns.Fqdn(name))
	}
	if !resp.Authoritative {
		return nil, fmt.Errorf("%s: AA not set (rcode %s)", dns.TypeToString[qtype], dns.RcodeToString[resp.Rcode])
	}
	if resp.Truncated {
		return nil, fmt.Errorf("%s: TC set", dns.TypeToString[qtype])
	}
	return resp, nil
}

// negative checks a NODATA or NXDOMAIN response.
func negative(resp *dns.Msg, rcode int, maxTTL uint32) error {
	if resp.Rcode != rcode {
		return fmt.Errorf("rcode %s, want %s (answer %v)", dns.RcodeToString[resp.Rcode], dns.RcodeToString[rcode], resp.Answer)
	}
	if len(resp.Answer) != 0 {
		return fmt.Errorf("answer %v, want none", resp.Answer)
	}
	var soas int
	for _, rr := range resp.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			soas++
			if soa.Hdr.Ttl > maxTTL {
				return fmt.Errorf("SOA TTL %d in authority, want at most %d", soa.Hdr.Ttl, maxTTL)
			}
		}
	}
	if soas != 1 || len(resp.Ns) != 1 {
		return fmt.Errorf("authority %v, want exactly the SOA", resp.Ns)
	}
	return nil
}

func checkNameOnce(server, name string, want NameWant, tcp bool) error {
	forbidden := func(addr string) bool { return slices.Contains(want.ForbidAddrs, addr) }

	// A: the set of endpoint addresses.
	a, err := exchangeChecked(server, name, dns.TypeA, tcp)
	if err != nil {
		return err
	}
	gotAddrs := slices.Compact(AnswerAddrs(a))
	for _, addr := range gotAddrs {
		if forbidden(addr) {
			return fmt.Errorf("%w: A %v contains %s", ErrForbiddenAnswer, gotAddrs, addr)
		}
	}
	var wantAddrs []string
	for _, e := range want.Endpoints {
		wantAddrs = append(wantAddrs, e.Addr)
	}
	slices.Sort(wantAddrs)
	wantAddrs = slices.Compact(wantAddrs)
	if len(wantAddrs) == 0 {
		if err := negative(a, dns.RcodeSuccess, ^uint32(0)); err != nil {
			return fmt.Errorf("A: want NODATA: %w", err)
		}
	} else if a.Rcode != dns.RcodeSuccess || !slices.Equal(gotAddrs, wantAddrs) {
		return fmt.Errorf("A: rcode %s addresses %v, want %v", dns.RcodeToString[a.Rcode], gotAddrs, wantAddrs)
	}

	// SRV: every target in the additional section and resolvable here; the
	// (address, port) pairs equal the endpoints.
	srv, err := exchangeChecked(server, name, dns.TypeSRV, tcp)
	if err != nil {
		return err
	}
	if len(want.Endpoints) == 0 {
		if err := negative(srv, dns.RcodeSuccess, ^uint32(0)); err != nil {
			return fmt.Errorf("SRV: want NODATA: %w", err)
		}
	} else if err := checkSRV(server, name, srv, want, tcp); err != nil {
		return err
	}

	// TXT: one line saying why.
	txt, err := exchangeChecked(server, name, dns.TypeTXT, tcp)
	if err != nil {
		return err
	}
	lines := AnswerTXT(txt)
	if txt.Rcode != dns.RcodeSuccess || len(lines) != 1 {
		return fmt.Errorf("TXT: rcode %s, %d records %q, want one", dns.RcodeToString[txt.Rcode], len(lines), lines)
	}
	for _, s := range want.ForbidTXT {
		if strings.Contains(lines[0], s) {
			return fmt.Errorf("%w: TXT %q contains %q", ErrForbiddenAnswer, lines[0], s)
		}
	}
	for _, s := range want.TXT {
		if !strings.Contains(lines[0], s) {
			return fmt.Errorf("TXT %q does not contain %q", lines[0], s)
		}
	}
	return nil
}

func checkSRV(server, name string, srv *dns.Msg, want NameWant, tcp bool) error {
	if srv.Rcode != dns.RcodeSuccess {
		return fmt.Errorf("SRV: rcode %s", dns.RcodeToString[srv.Rcode])
	}
	glue := map[string][]string{}
	for _, rr := range srv.Extra {
		if a, ok := rr.(*dns.A); ok {
			glue[strings.ToLower(a.Hdr.Name)] = append(glue[strings.ToLower(a.Hdr.Name)], a.A.String())
		}
	}
	var got []string
	targets := map[string]string{} // "addr:port" -> target
	for _, rr := range srv.Answer {
		s, ok := rr.(*dns.SRV)
		if !ok {
			return fmt.Errorf("SRV: unexpected record %v in the answer", rr)
		}
		target := strings.ToLower(s.Target)
		if len(glue[target]) != 1 {
			return fmt.Errorf("SRV: target %s has glue %v in the additional section, want one A record", target, glue[target])
		}
		// The target resolves from this server, to the same address.
		resp, err := exchangeChecked(server, target, dns.TypeA, tcp)
		if err != nil {
			return fmt.Errorf("SRV target: %w", err)
		}
		if addrs := AnswerAddrs(resp); resp.Rcode != dns.RcodeSuccess || !slices.Equal(addrs, glue[target]) {
			return fmt.Errorf("SRV target %s resolves to %v (rcode %s), glue says %v",
				target, addrs, dns.RcodeToString[resp.Rcode], glue[target])
		}
		ep := net.JoinHostPort(glue[target][0], strconv.Itoa(int(s.Port)))
		if slices.Contains(want.ForbidAddrs, glue[target][0]) {
			return fmt.Errorf("%w: SRV target %s is %s", ErrForbiddenAnswer, target, ep)
		}
		got = append(got, ep)
		targets[ep] = target
	}
	var wantEPs []string
	for _, e := range want.Endpoints {
		wantEPs = append(wantEPs, e.String())
	}
	slices.Sort(got)
	slices.Sort(wantEPs)
	if !slices.Equal(got, wantEPs) {
		return fmt.Errorf("SRV: endpoints %v, want %v", got, wantEPs)
	}
	zoneSuffix := strings.ToLower(name[strings.Index(name, ".")+1:]) // "<cluster>.<zone>"
	if want.Cluster != "" {
		zoneSuffix = strings.ToLower(want.Cluster)
	}
	for _, e := range want.Endpoints {
		if e.Member == "" {
			continue
		}
		wantTarget := strings.ToLower(e.Member + "." + e.Region + "." + dns.Fqdn(zoneSuffix))
		if got := targets[e.String()]; got != wantTarget {
			return fmt.Errorf("SRV: endpoint %s has target %s, want %s", e, got, wantTarget)
		}
	}
	return nil
}
