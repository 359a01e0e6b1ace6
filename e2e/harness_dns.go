package e2e

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// queryTimeout bounds one DNS exchange of the helpers.
const queryTimeout = 2 * time.Second

// Query sends one query for name and qtype to server ("host:port") over UDP,
// or TCP when tcp is set, and returns the response. It fails the test when no
// response arrives within a deadline; use Exchange inside WaitFor.
func Query(t testing.TB, server, name string, qtype uint16, tcp bool) *dns.Msg {
	t.Helper()
	resp, err := Exchange(server, NewQuery(name, qtype), tcp)
	if err != nil {
		t.Fatalf("query %s %s @%s: %v", name, dns.TypeToString[qtype], server, err)
	}
	return resp
}

// NewQuery returns a query for name (made fully qualified) and qtype, with
// recursion desired off as a resolver asking an authoritative server sends it.
func NewQuery(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = false
	return m
}

// Exchange sends msg to server over UDP, or TCP when tcp is set, with a
// deadline, and returns the response or the error.
func Exchange(server string, msg *dns.Msg, tcp bool) (*dns.Msg, error) {
	c := &dns.Client{Net: "udp", Timeout: queryTimeout}
	if tcp {
		c.Net = "tcp"
	}
	resp, _, err := c.Exchange(msg, server)
	return resp, err
}

// WaitFor polls cond every 50 ms until it reports true, and fails the test
// with cond's last reason when timeout passes first.
func WaitFor(t testing.TB, timeout time.Duration, cond func() (ok bool, why string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %s", timeout, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// AnswerAddrs returns the sorted A and AAAA addresses in the answer section.
func AnswerAddrs(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.AAAA:
			out = append(out, rr.AAAA.String())
		}
	}
	slices.Sort(out)
	return out
}

// AnswerSRV returns the answer section's SRV records as sorted
// "target:port" strings, targets lower-cased.
func AnswerSRV(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		if srv, ok := rr.(*dns.SRV); ok {
			out = append(out, fmt.Sprintf("%s:%d", strings.ToLower(srv.Target), srv.Port))
		}
	}
	slices.Sort(out)
	return out
}

// AnswerTXT returns the answer section's TXT strings, each record's strings
// joined.
func AnswerTXT(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(txt.Txt, ""))
		}
	}
	return out
}

// FreePorts returns n distinct loopback ports that were free for both TCP and
// UDP a moment ago. They are drawn below the kernel's ephemeral range when
// there is room (see listenRange): an agent killed and restarted on the same
// ports must not find one taken by an outgoing connection in between, which
// the kernel only numbers from the ephemeral range. Another test may still
// take one before it is bound: starters retry on "address already in use".
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	lo, hi := listenRange()
	for tries := 0; len(ports) < n; tries++ {
		if tries > 100*n {
			t.Fatalf("no free loopback ports for TCP and UDP after %d tries", tries)
		}
		port := 0 // the kernel's pick
		if hi > lo {
			port = lo + rand.IntN(hi-lo)
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			if port == 0 {
				t.Fatalf("pick a free port: %v", err)
			}
			continue
		}
		port = l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			l.Close()
			continue
		}
		// Held open until all are picked so that no port is returned twice.
		closers = append(closers, func() { l.Close(); u.Close() })
		ports = append(ports, port)
	}
	return ports
}

// listenRange returns the ports to draw listening ports from: from 10000 up
// to the start of the kernel's ephemeral range, or (0, 0) (let the kernel
// pick) when that range is unknown or starts too low.
func listenRange() (lo, hi int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0
	}
	start, err := strconv.Atoi(f[0])
	if err != nil || start < 12000 {
		return 0, 0
	}
	return 10000, start
}
