package forward

import (
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// answerScoped is answerA with the client subnet echoed, its scope the
// source prefix length: an answer for the client's subnet only, as Consul
// gives a prepared query.
func answerScoped(ttl uint32, addrs ...string) answerFunc {
	return func(req *dns.Msg, tcp bool) *dns.Msg {
		m := answerA(ttl, addrs...)(req, tcp)
		if sub := subnetOption(req.IsEdns0()); sub != nil && m.IsEdns0() != nil {
			out := *sub
			out.SourceScope = sub.SourceNetmask
			m.IsEdns0().Option = []dns.EDNS0{&out}
		}
		return m
	}
}

// orders sends n queries for name to addr and returns the distinct
// orders of their A records.
func orders(t *testing.T, network, addr, name string, n int) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	for range n {
		resp := exchange(t, network, addr, query(name, dns.TypeA, 1232))
		var got []string
		for _, rr := range resp.Answer {
			got = append(got, rr.(*dns.A).A.String())
		}
		sorted := slices.Clone(got)
		slices.Sort(sorted)
		if !slices.Equal(sorted, []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"}) {
			t.Fatalf("%s over %s: answer %v, want the five records", name, network, got)
		}
		seen[strings.Join(got, " ")] = true
	}
	return seen
}

var fiveAddrs = []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"}

// TestCachedAnswersShuffled: a cached answer comes back in a new order
// per query, as Consul DNS's answers do, on the fast path (lower case over
// UDP and TCP) and the slow path (a name with an upper-case letter).
func TestCachedAnswersShuffled(t *testing.T) {
	up := startUpstream(t, answerA(30, fiveAddrs...))
	srv := startForwardingServer(t, forwarder(newTestClock(), []string{up.addr}))
	for _, tt := range []struct{ network, name string }{
		{"udp", "web.service.consul."},
		{"tcp", "web.service.consul."},
		{"udp", "Web.Service.Consul."},
		{"tcp", "Web.Service.Consul."},
	} {
		if seen := orders(t, tt.network, srv.Addr(), tt.name, 20); len(seen) < 2 {
			t.Errorf("%s over %s: 20 queries, %d order: %v", tt.name, tt.network, len(seen), seen)
		}
	}
	if up.queries() != 1 {
		t.Errorf("%d upstream queries, want 1: the rest are cache hits", up.queries())
	}
}

// TestScopedAnswersKeepOrder: an answer for one client subnet (a prepared
// query sorted for the client) keeps the order the upstream gave it.
func TestScopedAnswersKeepOrder(t *testing.T) {
	up := startUpstream(t, answerScoped(30, fiveAddrs...))
	srv := startForwardingServer(t, forwarder(newTestClock(), []string{up.addr}))
	for _, network := range []string{"udp", "tcp"} {
		seen := orders(t, network, srv.Addr(), "near.query.consul.", 20)
		if want := strings.Join(fiveAddrs, " "); len(seen) != 1 || !seen[want] {
			t.Errorf("over %s: orders %v, want the upstream's alone (%s)", network, seen, want)
		}
	}
	if up.queries() != 1 {
		t.Errorf("%d upstream queries, want 1", up.queries())
	}
}
