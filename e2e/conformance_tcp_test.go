package e2e

import (
	"errors"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// confClients covers what particular clients send: the CoreDNS forward
// health probe, and the parallel A and AAAA queries of glibc and musl.
func confClients(t *testing.T, w *confWorld) {
	t.Run("CoreDNS forward health probe", func(t *testing.T) {
		// plugin/forward/health.go (CoreDNS 1.10): ". IN NS" over UDP, RD
		// set unless no_rec, 1 s read and write timeouts; the upstream is
		// healthy when Exchange returns no error, or a reply that is a
		// response or has opcode QUERY. regiondns answers it REFUSED: the
		// root is not a delegated domain (coredns_test.go runs a real
		// CoreDNS against it).
		for _, rd := range []bool{true, false} {
			c := &dns.Client{Net: "udp", ReadTimeout: time.Second, WriteTimeout: time.Second}
			for range 3 {
				ping := new(dns.Msg)
				ping.SetQuestion(".", dns.TypeNS)
				ping.RecursionDesired = rd
				start := time.Now()
				m, _, err := c.Exchange(ping, w.Addr)
				if err != nil && m != nil && (m.Response || m.Opcode == dns.OpcodeQuery) {
					err = nil
				}
				if err != nil {
					t.Fatalf("RD=%v: probe fails as CoreDNS sees it (upstream marked unhealthy): %v", rd, err)
				}
				t.Logf("RD=%v: . NS answered %s in %s", rd, dns.RcodeToString[m.Rcode], time.Since(start).Round(time.Millisecond))
				if m.Rcode != dns.RcodeRefused {
					t.Errorf("RD=%v: . NS answered %s, want REFUSED", rd, dns.RcodeToString[m.Rcode])
				}
				if m.RecursionDesired != rd || m.Authoritative {
					t.Errorf("RD=%v: response RD %v AA %v", rd, m.RecursionDesired, m.Authoritative)
				}
			}
		}
	})

	t.Run("A and AAAA in parallel from one socket", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			want []string
		}{
			{"rw.orders." + confZone, []string{w.OrdersLeader}},
			{"ro.orders." + confZone, w.OrdersReplicas},
			{"master.orders.service.dc1.consul.", []string{w.OrdersLeader}},
		} {
			for _, edns := range []bool{false, true} { // glibc and musl: none; Go: 1232
				c, err := net.Dial("udp", w.Addr)
				if err != nil {
					t.Fatal(err)
				}
				qa, qaaaa := confQuery(tc.name, dns.TypeA, true), confQuery(tc.name, dns.TypeAAAA, true)
				qaaaa.Id = qa.Id + 1
				if edns {
					confEDNS(qa, 1232, 0, false)
					confEDNS(qaaaa, 1232, 0, false)
				}
				for _, q := range []*dns.Msg{qa, qaaaa} {
					if _, err := c.Write(confPack(t, q)); err != nil {
						t.Fatal(err)
					}
				}
				got := map[uint16]*dns.Msg{}
				for len(got) < 2 {
					raw, err := confReadUDP(c, queryTimeout)
					if err != nil {
						t.Fatalf("%s EDNS=%v: %d of 2 answers: %v", tc.name, edns, len(got), err)
					}
					resp := confUnpack(t, raw)
					got[resp.Id] = resp
				}
				c.Close()
				a, aaaa := got[qa.Id], got[qaaaa.Id]
				if a == nil || aaaa == nil {
					t.Fatalf("%s: answers by ID %v, want IDs %d and %d", tc.name, got, qa.Id, qaaaa.Id)
				}
				if a.Question[0].Qtype != dns.TypeA || a.Rcode != dns.RcodeSuccess || !slices.Equal(AnswerAddrs(a), sortedCopy(tc.want)) {
					t.Errorf("%s EDNS=%v: A answer %v rcode %s, want %v", tc.name, edns, a.Answer, dns.RcodeToString[a.Rcode], tc.want)
				}
				if aaaa.Question[0].Qtype != dns.TypeAAAA || aaaa.Rcode != dns.RcodeSuccess || len(aaaa.Answer) != 0 || confSOA(aaaa.Ns) == nil {
					t.Errorf("%s EDNS=%v: AAAA rcode %s answer %v authority %v, want NODATA with an SOA",
						tc.name, edns, dns.RcodeToString[aaaa.Rcode], aaaa.Answer, aaaa.Ns)
				}
			}
		}
	})
}

// confTCPTests covers RFC 7766: pipelining, split messages, idle timeout
// and the bound on open connections (REGIONDNS_TCP_IDLE_TIMEOUT=1s,
// REGIONDNS_TCP_MAX_CONNS=4 in confEnv).
func confTCPTests(t *testing.T, w *confWorld) {
	rw := "rw.orders." + confZone

	t.Run("pipelined queries on one connection", func(t *testing.T) {
		conn := confDialTCP(t, w.Addr)
		defer conn.Close()
		type want struct {
			rcode int
			n     int // answer records
		}
		queries := []struct {
			q    *dns.Msg
			want want
		}{
			{confQuery(confMixCase(rw), dns.TypeA, false), want{dns.RcodeSuccess, 1}},
			{confQuery("ro.orders."+confZone, dns.TypeA, false), want{dns.RcodeSuccess, 2}},
			{confQuery("ro.orders."+confZone, dns.TypeSRV, false), want{dns.RcodeSuccess, 2}},
			{confQuery("nosuch."+confZone, dns.TypeA, false), want{dns.RcodeNameError, 0}},
			{confQuery("ro.big."+confZone, dns.TypeSRV, false), want{dns.RcodeSuccess, confBigReplicas}},
			{confQuery("Master.Orders.Service.DC1.Consul.", dns.TypeA, true), want{dns.RcodeSuccess, 1}},
			{confQuery(rw, dns.TypeTXT, false), want{dns.RcodeSuccess, 1}},
			{confQuery(confZone, dns.TypeSOA, false), want{dns.RcodeSuccess, 1}},
			{confQuery("orders."+confZone, dns.TypeSOA, false), want{dns.RcodeSuccess, 1}},
			{confQuery("nosuch.orders."+confZone, dns.TypeA, false), want{dns.RcodeNameError, 0}},
		}
		var buf []byte
		byID := map[uint16]int{}
		for i, e := range queries {
			for byID[e.q.Id] != 0 || e.q.Id == 0 {
				e.q.Id = dns.Id()
			}
			byID[e.q.Id] = i + 1
			buf = append(buf, confFrame(confPack(t, e.q))...)
		}
		conn.write(t, buf) // every query before reading any response
		seen := map[uint16]bool{}
		for range queries {
			raw, err := conn.read(queryTimeout)
			if err != nil {
				t.Fatalf("%d of %d pipelined answers: %v", len(seen), len(queries), err)
			}
			resp := confUnpack(t, raw)
			i := byID[resp.Id] - 1
			if i < 0 || seen[resp.Id] {
				t.Fatalf("answer with ID %d: unknown or repeated", resp.Id)
			}
			seen[resp.Id] = true
			e := queries[i]
			if len(resp.Question) != 1 || resp.Question[0] != e.q.Question[0] || resp.Rcode != e.want.rcode || len(resp.Answer) != e.want.n {
				t.Errorf("%s: question %v rcode %s %d answers, want %s and %d", confDescribe(e.q), resp.Question,
					dns.RcodeToString[resp.Rcode], len(resp.Answer), dns.RcodeToString[e.want.rcode], e.want.n)
			}
		}
	})

	t.Run("split length prefix and message", func(t *testing.T) {
		conn := confDialTCP(t, w.Addr)
		defer conn.Close()
		q := confQuery(confMixCase(rw), dns.TypeA, true)
		frame := confFrame(confPack(t, q))
		half := 2 + (len(frame)-2)/2
		for _, part := range [][]byte{frame[:1], frame[1:2], frame[2:half]} {
			conn.write(t, part)
			// Nothing comes back for an incomplete message, and the
			// connection stays open.
			if raw, err := conn.read(100 * time.Millisecond); !errors.Is(err, errNoResponse) {
				t.Fatalf("after %d of %d bytes: % x, %v; want the server to wait for the rest", len(part), len(frame), raw, err)
			}
		}
		conn.write(t, frame[half:])
		raw, err := conn.read(queryTimeout)
		if err != nil {
			t.Fatalf("answer to the split query: %v", err)
		}
		if resp := confUnpack(t, raw); resp.Id != q.Id || !slices.Equal(AnswerAddrs(resp), []string{w.OrdersLeader}) {
			t.Errorf("answer to the split query: %v", resp)
		}
		// The same connection takes the next query.
		conn.exchange(t, confQuery(rw, dns.TypeSRV, false))
	})

	t.Run("idle connections time out, others keep working", func(t *testing.T) {
		const idle = time.Second // REGIONDNS_TCP_IDLE_TIMEOUT
		used := confDialTCP(t, w.Addr)
		used.exchange(t, confQuery(rw, dns.TypeA, false))
		usedAt := time.Now()
		silent := confDialTCP(t, w.Addr) // never sends a query
		silentAt := time.Now()
		busy := confDialTCP(t, w.Addr)

		type closed struct {
			name  string
			err   error
			after time.Duration
		}
		done := make(chan closed, 2)
		for name, c := range map[string]*confTCP{"used": used, "silent": silent} {
			since := map[string]time.Time{"used": usedAt, "silent": silentAt}[name]
			go func() {
				raw, err := c.read(4 * idle)
				if err == nil {
					err = errors.New("unexpected message " + string(raw))
				}
				done <- closed{name, err, time.Since(since)}
			}()
		}
		answered := 0
		for got := 0; got < 2; {
			select {
			case c := <-done:
				got++
				if !errors.Is(c.err, io.EOF) {
					t.Errorf("%s idle connection: %v, want it closed by the server", c.name, c.err)
				} else if c.after < idle*3/4 || c.after > 3*idle {
					t.Errorf("%s idle connection closed after %s, want about %s", c.name, c.after.Round(time.Millisecond), idle)
				} else {
					t.Logf("%s idle connection closed after %s", c.name, c.after.Round(time.Millisecond))
				}
			case <-time.After(150 * time.Millisecond):
				// Meanwhile another connection keeps being answered.
				busy.exchange(t, confQuery(rw, dns.TypeA, false))
				answered++
			}
		}
		busy.exchange(t, confQuery(rw, dns.TypeA, false))
		if answered < 3 {
			t.Errorf("busy connection answered %d times while the others idled, want several", answered)
		}
	})

	// RFC 7766 §6.2.3: at the bound, the server may close idle
	// connections; the longest-idle one yields to the new client.
	t.Run("bound on open connections: the longest idle yields", func(t *testing.T) {
		const maxConns = 4 // REGIONDNS_TCP_MAX_CONNS
		q := confQuery(rw, dns.TypeA, false)
		var conns []*confTCP
		for range maxConns {
			c := confDialTCP(t, w.Addr)
			c.exchange(t, q) // accepted and served, then idle
			conns = append(conns, c)
		}
		extra := confDialTCP(t, w.Addr)
		eq := confQuery(rw, dns.TypeA, false)
		start := time.Now()
		extra.write(t, confFrame(confPack(t, eq)))
		raw, err := extra.read(queryTimeout)
		if err != nil {
			t.Fatalf("connection over the bound of %d: %v; want it served, the longest-idle one closed", maxConns, err)
		}
		if resp := confUnpack(t, raw); resp.Id != eq.Id || resp.Rcode != dns.RcodeSuccess {
			t.Errorf("connection over the bound: %v", resp)
		}
		t.Logf("the connection over the bound was answered in %s", time.Since(start).Round(time.Millisecond))
		if raw, err := conns[0].read(queryTimeout); !errors.Is(err, io.EOF) {
			t.Errorf("longest-idle connection: % x, %v; want it closed by the server", raw, err)
		}
		for _, c := range conns[1:] { // the others are still served
			c.exchange(t, q)
			c.Close()
		}
		extra.Close()
	})
}
