package forward

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/internal/dnswire"
)

func TestForwardPassThrough(t *testing.T) {
	up := startUpstream(t, answerA(30, "10.0.0.7"))
	noRA := startUpstream(t, func(req *dns.Msg, tcp bool) *dns.Msg {
		m := answerA(30, "10.0.0.8")(req, tcp)
		m.RecursionAvailable = false
		return m
	})
	srv := startForwardingServer(t, forwarder(newTestClock(), []string{up.addr}))
	srvNoRA := startForwardingServer(t, forwarder(nil, []string{noRA.addr}))

	tests := []struct {
		name    string
		addr    string
		network string
		qname   string
		rd      bool
		wantRA  bool
	}{
		{name: "UDP, mixed case, RD", addr: srv.Addr(), network: "udp", qname: "Web.Service.DC1.Consul.", rd: true, wantRA: true},
		{name: "TCP, no RD", addr: srv.Addr(), network: "tcp", qname: "DB.service.consul.", wantRA: true},
		{name: "upstream RA clear stays clear", addr: srvNoRA.Addr(), network: "udp", qname: "X.node.consul.", rd: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := query(tt.qname, dns.TypeA, 1232)
			req.Id, req.RecursionDesired = 0x1234, tt.rd
			resp := exchange(t, tt.network, tt.addr, req)
			if resp.Id != 0x1234 || resp.RecursionDesired != tt.rd || resp.RecursionAvailable != tt.wantRA {
				t.Errorf("header: ID %#x RD %v RA %v; want ID 0x1234 RD %v RA %v", resp.Id, resp.RecursionDesired, resp.RecursionAvailable, tt.rd, tt.wantRA)
			}
			if resp.Authoritative {
				t.Error("AA set on a delegated answer")
			}
			if len(resp.Question) != 1 || resp.Question[0].Name != tt.qname {
				t.Errorf("question %v, want %q as sent", resp.Question, tt.qname)
			}
			if resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 1 {
				t.Errorf("answer: %v", resp)
			}
			if opt := resp.IsEdns0(); opt == nil || opt.UDPSize() != dnswire.DefaultUDPSize {
				t.Errorf("OPT: %v, want ours", opt)
			}
		})
	}

	sent := up.last(t)
	if q := sent.Question[0]; q.Name != "db.service.consul." || !sent.RecursionDesired || sent.CheckingDisabled {
		t.Errorf("upstream query: %v; want the name lower-cased, RD set, CD clear", sent)
	}
	// The client (127.0.0.1) sent no client subnet: its /24 goes upstream,
	// and nothing else.
	opt := sent.IsEdns0()
	if opt == nil || opt.UDPSize() != dnswire.DefaultUDPSize || opt.Do() || len(opt.Option) != 1 {
		t.Fatalf("upstream OPT: %v; want size %d, no DO, the client subnet only", opt, dnswire.DefaultUDPSize)
	}
	if ecs, ok := opt.Option[0].(*dns.EDNS0_SUBNET); !ok || ecs.Family != 1 || ecs.SourceNetmask != 24 || !ecs.Address.Equal(net.IPv4(127, 0, 0, 0)) {
		t.Errorf("upstream option %v, want the client subnet 127.0.0.0/24", opt.Option[0])
	}
}

func TestForwardCacheHitCountsDown(t *testing.T) {
	up := startUpstream(t, answerA(30, "10.0.0.7"))
	clock := newTestClock()
	f := forwarder(clock, []string{up.addr})

	if m := mustAsk(t, f, "web.service.consul.", dns.TypeA); m.Answer[0].Header().Ttl != 30 {
		t.Fatalf("first answer: %v", m)
	}
	clock.Advance(3 * time.Second)
	m := mustAsk(t, f, "WEB.service.consul.", dns.TypeA)
	if up.queries() != 1 {
		t.Errorf("upstream received %d queries, want 1: the second is a cache hit", up.queries())
	}
	if ttl := m.Answer[0].Header().Ttl; ttl != 27 {
		t.Errorf("TTL after 3s = %d, want 27", ttl)
	}
	if m.Question[0].Name != "WEB.service.consul." {
		t.Errorf("question %q, want the client's", m.Question[0].Name)
	}
	clock.Advance(27 * time.Second)
	mustAsk(t, f, "web.service.consul.", dns.TypeA)
	if up.queries() != 2 {
		t.Errorf("upstream received %d queries, want 2: the entry expired", up.queries())
	}
}

func TestForwardNegativeCachedForSOAMinimum(t *testing.T) {
	up := startUpstream(t, func(req *dns.Msg, _ bool) *dns.Msg {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeNameError)
		soa, _ := dns.NewRR("consul. 300 IN SOA ns.consul. hostmaster.consul. 1 3600 600 86400 10")
		m.Ns = []dns.RR{soa}
		return m
	})
	clock := newTestClock()
	f := forwarder(clock, []string{up.addr})

	mustAsk(t, f, "nope.service.consul.", dns.TypeA)
	clock.Advance(9 * time.Second)
	m := mustAsk(t, f, "nope.service.consul.", dns.TypeA)
	if up.queries() != 1 || m.Rcode != dns.RcodeNameError || len(m.Ns) != 1 || m.Ns[0].Header().Ttl != 1 {
		t.Errorf("after 9s: %d upstream queries, %v; want a hit, NXDOMAIN, SOA TTL 1", up.queries(), m)
	}
	clock.Advance(time.Second)
	mustAsk(t, f, "nope.service.consul.", dns.TypeA)
	if up.queries() != 2 {
		t.Errorf("after 10s: %d upstream queries, want 2", up.queries())
	}
}

func TestForwardSERVFAILCachedBriefly(t *testing.T) {
	a := startUpstream(t, answerRcode(dns.RcodeServerFailure))
	b := startUpstream(t, answerRcode(dns.RcodeServerFailure))
	clock := newTestClock()
	f := forwarder(clock, []string{a.addr}, []string{b.addr})
	h := handler(t, f)

	if resp := roundTrip(t, h, query("broken.consul.", dns.TypeA, 0), false); resp.Rcode != dns.RcodeServerFailure {
		t.Fatalf("rcode %s, want SERVFAIL", dns.RcodeToString[resp.Rcode])
	}
	if a.queries() != 1 || b.queries() != 1 {
		t.Fatalf("queries %d, %d: want every upstream tried once", a.queries(), b.queries())
	}
	clock.Advance(999 * time.Millisecond)
	roundTrip(t, h, query("broken.consul.", dns.TypeA, 0), false)
	if a.queries() != 1 {
		t.Errorf("SERVFAIL not cached for 1s: %d queries", a.queries())
	}
	clock.Advance(time.Millisecond)
	roundTrip(t, h, query("broken.consul.", dns.TypeA, 0), false)
	if a.queries() != 2 {
		t.Errorf("SERVFAIL cached over 1s: %d queries", a.queries())
	}
}

func TestForwardFailover(t *testing.T) {
	tests := []struct {
		name  string
		first []answerFunc // nil: a closed port
		other []answerFunc
	}{
		{name: "first upstream down", first: []answerFunc{nil, answerA(30, "10.0.0.1")}},
		{name: "first upstream times out", first: []answerFunc{silent, answerA(30, "10.0.0.1")}},
		{name: "first upstream refuses", first: []answerFunc{answerRcode(dns.RcodeRefused), answerA(30, "10.0.0.1")}},
		{name: "first upstream SERVFAIL", first: []answerFunc{answerRcode(dns.RcodeServerFailure), answerA(30, "10.0.0.1")}},
		{name: "local region down, other region answers", first: []answerFunc{nil, silent}, other: []answerFunc{answerA(30, "10.0.0.1")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addrs := func(fns []answerFunc) []string {
				var out []string
				for _, fn := range fns {
					if fn == nil {
						out = append(out, closedAddr(t))
					} else {
						out = append(out, startUpstream(t, fn).addr)
					}
				}
				return out
			}
			f := forwarder(newTestClock(), addrs(tt.first), addrs(tt.other))
			m := mustAsk(t, f, "web.service.consul.", dns.TypeA)
			if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
				t.Errorf("answer: %v", m)
			}
		})
	}
}

func TestForwardSkipsDownUpstream(t *testing.T) {
	dead := startUpstream(t, silent)
	good := startUpstream(t, answerA(0, "10.0.0.1"))
	f := forwarder(nil, []string{dead.addr}, []string{good.addr})

	for i := range 4 {
		mustAsk(t, f, fmt.Sprintf("n%d.consul.", i), dns.TypeA)
	}
	// Two failures make it suspect (downAfter), its probe gets no answer;
	// later queries skip it.
	if n := dead.queries() - dead.probes(); n != downAfter || good.queries() != 4 {
		t.Errorf("queries: down upstream %d, want %d; good upstream %d, want 4", n, downAfter, good.queries())
	}
}

func TestForwardHealthiestFirstInGroup(t *testing.T) {
	flaky := startUpstream(t, silent)
	good := startUpstream(t, answerA(0, "10.0.0.1"))
	f := forwarder(nil, []string{flaky.addr, good.addr})

	mustAsk(t, f, "a.consul.", dns.TypeA)
	mustAsk(t, f, "b.consul.", dns.TypeA)
	if flaky.queries() != 1 || good.queries() != 2 {
		t.Errorf("queries: failing upstream %d, want 1 (tried after its healthier peer once it failed); good %d, want 2",
			flaky.queries(), good.queries())
	}
}

func TestForwardAllDown(t *testing.T) {
	tests := []struct {
		name   string
		groups [][]string
	}{
		{name: "closed ports", groups: [][]string{{closedAddr(t)}, {closedAddr(t)}}},
		{name: "one group, closed port", groups: [][]string{{closedAddr(t)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := forwarder(newTestClock(), tt.groups...)
			if _, err := ask(t, f, "web.service.consul.", dns.TypeA); !errors.Is(err, ErrNoUpstream) {
				t.Errorf("error %v, want ErrNoUpstream", err)
			}
			h := handler(t, f)
			if resp := roundTrip(t, h, query("web.service.consul.", dns.TypeA, 0), false); resp.Rcode != dns.RcodeServerFailure {
				t.Errorf("rcode %s, want SERVFAIL", dns.RcodeToString[resp.Rcode])
			}
		})
	}
}

// TestForwardNoUpstreamRefuses: a forwarder without upstreams (no region
// has consul_dns addresses, or a reload removed them all) answers REFUSED,
// as regiondns does with delegation off; answers already in its cache are
// still served until they expire.
func TestForwardNoUpstreamRefuses(t *testing.T) {
	up := startUpstream(t, answerA(30, "10.0.0.7"))
	for _, tt := range []struct {
		name  string
		start [][]string // the upstreams before SetUpstreams(nil)
	}{
		{name: "none from the start"},
		{name: "all removed by a reload", start: [][]string{{up.addr}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := forwarder(newTestClock(), tt.start...)
			if tt.start != nil {
				mustAsk(t, f, "cached.consul.", dns.TypeA)
			}
			f.SetUpstreams(nil)
			m, err := ask(t, f, "web.service.consul.", dns.TypeA)
			if err != nil || m.Rcode != dns.RcodeRefused || len(m.Answer) != 0 {
				t.Errorf("Delegate: %v, %v; want REFUSED", m, err)
			}
			resp := roundTrip(t, handler(t, f), query("Web.service.consul.", dns.TypeA, 1232), false)
			if resp.Rcode != dns.RcodeRefused || resp.Authoritative || resp.Question[0].Name != "Web.service.consul." {
				t.Errorf("client sees %v; want REFUSED, no AA, its question", resp)
			}
			if tt.start != nil {
				if m := mustAsk(t, f, "cached.consul.", dns.TypeA); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
					t.Errorf("cached answer after the reload: %v", m)
				}
			}
		})
	}
}

// An upstream that answers, but with neither NOERROR nor NXDOMAIN, is
// relayed when no other upstream does better: the client gets Consul DNS's
// own REFUSED (a name outside its domain, no recursors), not a SERVFAIL;
// a SERVFAIL from any upstream wins over it. A REFUSED is not cached.
func TestForwardRelaysDeclinedAnswer(t *testing.T) {
	refused, notimp, servfail := answerRcode(dns.RcodeRefused), answerRcode(dns.RcodeNotImplemented), answerRcode(dns.RcodeServerFailure)
	tests := []struct {
		name      string
		local     []answerFunc // nil: a closed port
		other     []answerFunc
		wantRcode int
		wantTries int // upstream queries of each ask
	}{
		{name: "refused everywhere", local: []answerFunc{refused}, other: []answerFunc{refused}, wantRcode: dns.RcodeRefused, wantTries: 2},
		{name: "not implemented", local: []answerFunc{notimp}, wantRcode: dns.RcodeNotImplemented, wantTries: 1},
		{name: "refused, other region down", local: []answerFunc{refused}, other: []answerFunc{nil}, wantRcode: dns.RcodeRefused, wantTries: 1},
		{name: "refused and SERVFAIL", local: []answerFunc{refused}, other: []answerFunc{servfail}, wantRcode: dns.RcodeServerFailure, wantTries: 2},
		{name: "refused, then an answer", local: []answerFunc{refused}, other: []answerFunc{answerA(30, "10.0.0.1")}, wantRcode: dns.RcodeSuccess, wantTries: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ups []*fakeUpstream
			addrs := func(fns []answerFunc) []string {
				var out []string
				for _, fn := range fns {
					if fn == nil {
						out = append(out, closedAddr(t))
						continue
					}
					u := startUpstream(t, fn)
					ups = append(ups, u)
					out = append(out, u.addr)
				}
				return out
			}
			f := forwarder(newTestClock(), addrs(tt.local), addrs(tt.other))
			h := handler(t, f)
			tries := func() (n int) {
				for _, u := range ups {
					n += u.queries()
				}
				return n
			}
			for i := 1; i <= 2; i++ {
				req := query("Example.COM.", dns.TypeNS, 1232)
				req.Id, req.RecursionDesired = 0x4242, true
				resp := roundTrip(t, h, req, false)
				if resp.Rcode != tt.wantRcode || resp.Id != req.Id || !resp.RecursionDesired || resp.Authoritative ||
					resp.Question[0] != req.Question[0] || resp.IsEdns0() == nil {
					t.Errorf("ask %d: response %v, want rcode %s with the client's ID, RD and question, no AA, our OPT",
						i, resp, dns.RcodeToString[tt.wantRcode])
				}
				if tt.wantRcode == dns.RcodeRefused || tt.wantRcode == dns.RcodeNotImplemented {
					if got := tries(); got != i*tt.wantTries {
						t.Errorf("ask %d: %d upstream queries in all, want %d: a declined answer is not cached", i, got, i*tt.wantTries)
					}
				} else if i == 1 && tries() != tt.wantTries {
					t.Errorf("%d upstream queries, want %d", tries(), tt.wantTries)
				}
			}
		})
	}
}

func TestForwardTruncatedRetriesTCP(t *testing.T) {
	const n = 100
	up := startUpstream(t, manyA(n))
	f := forwarder(newTestClock(), []string{up.addr})
	srv := startForwardingServer(t, f)

	if resp := exchange(t, "tcp", srv.Addr(), query("big.service.consul.", dns.TypeA, 1232)); len(resp.Answer) != n || resp.Truncated {
		t.Errorf("TCP client: %d records, TC %v; want all %d", len(resp.Answer), resp.Truncated, n)
	}
	if up.udp.Load() != 1 || up.tcp.Load() != 1 {
		t.Errorf("upstream queries: UDP %d, TCP %d; want one of each", up.udp.Load(), up.tcp.Load())
	}
	// The whole answer is cached; a UDP client gets TC and retries over TCP.
	if resp := exchange(t, "udp", srv.Addr(), query("big.service.consul.", dns.TypeA, 1232)); !resp.Truncated {
		t.Errorf("UDP client: %d records, TC %v; want TC", len(resp.Answer), resp.Truncated)
	}
	if up.queries() != 2 {
		t.Errorf("upstream queries %d, want 2", up.queries())
	}

	tcpOnly := New(Options{Groups: [][]string{{up.addr}}, ForceTCP: true}, nil, nil)
	if m := mustAsk(t, tcpOnly, "big.service.consul.", dns.TypeA); len(m.Answer) != n || up.udp.Load() != 1 {
		t.Errorf("ForceTCP: %d records, %d UDP queries; want %d records and no UDP", len(m.Answer), up.udp.Load(), n)
	}
}

func TestForwardDOBitIsPartOfTheKey(t *testing.T) {
	up := startUpstream(t, answerA(30, "10.0.0.7"))
	f := forwarder(newTestClock(), []string{up.addr})
	withDO := func() *dns.Msg { m := query("web.service.consul.", dns.TypeA, 1232); m.IsEdns0().SetDo(); return m }

	for range 2 {
		for _, do := range []bool{false, true} {
			req := query("web.service.consul.", dns.TypeA, 1232)
			if do {
				req = withDO()
			}
			if _, err := f.Delegate(req, false, netip.Addr{}); err != nil {
				t.Fatal(err)
			}
			if do && !up.last(t).IsEdns0().Do() {
				t.Error("the client's DO bit was not sent upstream")
			}
		}
	}
	if up.queries() != 2 {
		t.Errorf("upstream queries %d, want 2: one per DO bit, then hits", up.queries())
	}
}

func TestForwardSingleflight(t *testing.T) {
	wait, open := gate(t)
	up := startUpstream(t, func(req *dns.Msg, tcp bool) *dns.Msg {
		<-wait
		return answerA(0, "10.0.0.1")(req, tcp)
	})
	f := forwarder(newTestClock(), []string{up.addr})

	const callers = 10
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			m, err := f.Delegate(query("web.service.consul.", dns.TypeA, 1232), false, netip.Addr{})
			if err == nil && len(m.Answer) != 1 {
				err = fmt.Errorf("answer %v", m)
			}
			errs <- err
		})
	}
	key := NewKey(dns.Question{Name: "web.service.consul.", Qtype: dns.TypeA, Qclass: dns.ClassINET}, false)
	eventually(t, "every caller to join the flight", func() bool { return f.flights.waiting(key) == callers-1 })
	open()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if up.queries() != 1 {
		t.Errorf("upstream queries %d, want 1", up.queries())
	}
}

func TestForwardHitsDoNotWaitForMisses(t *testing.T) {
	wait, open := gate(t)
	slowArrived := make(chan struct{})
	var once sync.Once
	up := startUpstream(t, func(req *dns.Msg, tcp bool) *dns.Msg {
		if req.Question[0].Name == "slow.consul." {
			once.Do(func() { close(slowArrived) })
			<-wait
		}
		return answerA(30, "10.0.0.1")(req, tcp)
	})
	f := New(Options{Groups: [][]string{{up.addr}}, Timeout: 2 * deadline, MaxTime: 2 * deadline},
		NewLRU(LRUOptions{}), nil)
	mustAsk(t, f, "hot.consul.", dns.TypeA)

	slowDone := make(chan error, 1)
	go func() { _, err := ask(t, f, "slow.consul.", dns.TypeA); slowDone <- err }()
	select {
	case <-slowArrived:
	case <-time.After(deadline):
		t.Fatal("the slow query never reached the upstream")
	}

	hitsDone := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() { f.Delegate(query("hot.consul.", dns.TypeA, 1232), false, netip.Addr{}) })
		}
		wg.Wait()
		close(hitsDone)
	}()
	select {
	case <-hitsDone:
	case <-time.After(deadline):
		t.Fatal("cache hits waited for a miss in progress")
	}
	if up.queries() != 2 {
		t.Errorf("upstream queries %d, want 2 (hot once, slow once)", up.queries())
	}
	open()
	if err := <-slowDone; err != nil {
		t.Errorf("slow query: %v", err)
	}
}
