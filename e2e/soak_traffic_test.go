package e2e

// What the soak's clients ask: the queries of each class and how their
// answers are judged.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// soakZoneNames are the zone names the well-behaved clients ask: the four
// names of every cluster of the fleet, and the apex.
func soakZoneNames(fl *layoutFleet) []string {
	var names []string
	for _, c := range fl.Clusters {
		for _, n := range nameLabels {
			names = append(names, c.FQDN(n))
		}
	}
	return append(names, fleetZone)
}

// soakZoneTypes are the types asked of the cluster names (the apex gets
// SOA): every one is answered NOERROR, with records or as NODATA.
var soakZoneTypes = []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypeTXT}

// soakDelegatedNames are names under consul. that the real Consul DNS of
// the fleet answers (NOERROR or NXDOMAIN, by its data of the moment).
func soakDelegatedNames(f *Federation) []string {
	return []string{
		"orders.service.consul.",
		"master.orders.service.consul.",
		"replica.billing.service.consul.",
		"ledger-pgbouncer-rw.service.consul.",
		"pgbouncer.service.consul.",
		"orders.service.dc2.consul.",
		"consul.service.consul.",
		f.DC1.Server.Name + ".node.consul.",
	}
}

// soakPack packs m; a message the test built itself always packs.
func soakPack(m *dns.Msg) []byte {
	wire, err := m.Pack()
	if err != nil {
		panic(fmt.Sprintf("pack %v: %v", m.Question, err))
	}
	return wire
}

// soakZoneCheck judges an answer from the zone: NOERROR, AA, the question
// echoed exactly as asked (its case included).
func soakZoneCheck(q dns.Question) func(*dns.Msg) bool {
	return func(m *dns.Msg) bool {
		return m.Response && m.Rcode == dns.RcodeSuccess && m.Authoritative &&
			len(m.Question) == 1 && m.Question[0] == q
	}
}

// soakZoneQuery returns the i-th query of the plain zone traffic, its name
// spelled by spell.
func soakZoneQuery(names []string, i int, spell func(string) string) (*dns.Msg, dns.Question) {
	name := names[i%len(names)]
	qtype := soakZoneTypes[(i/len(names))%len(soakZoneTypes)]
	if name == fleetZone {
		qtype = dns.TypeSOA
	}
	m := NewQuery(spell(name), qtype)
	return m, m.Question[0]
}

func lowerCase(s string) string { return s }

// soakZoneGen asks the zone's names, lower case: the fast path.
func soakZoneGen(names []string) soakGen {
	return func(_ *rand.Rand, i int) soakQuery {
		m, q := soakZoneQuery(names, i, lowerCase)
		return soakQuery{wire: soakPack(m), check: soakZoneCheck(q)}
	}
}

// soakMixedCaseGen asks the zone's names in mixed case: every other query
// with random case in every label, as resolvers using 0x20 do; the others
// with the last label lower case, which takes the slow path.
func soakMixedCaseGen(names []string) soakGen {
	return func(rng *rand.Rand, i int) soakQuery {
		m, q := soakZoneQuery(names, i, func(name string) string {
			b := []byte(name)
			end := len(b)
			if i%2 == 1 {
				end = strings.LastIndexByte(strings.TrimSuffix(name, "."), '.')
			}
			for j := 0; j < end; j++ {
				if b[j] >= 'a' && b[j] <= 'z' && rng.IntN(2) == 0 {
					b[j] -= 'a' - 'A'
				}
			}
			return string(b)
		})
		return soakQuery{wire: soakPack(m), check: soakZoneCheck(q)}
	}
}

// soakEDNSGen asks the zone's names with EDNS options: a client COOKIE
// (RFC 7873), which the fast path passes over, and a client subnet
// (RFC 7871), which takes the slow path. The answer must carry an OPT.
func soakEDNSGen(names []string) soakGen {
	return func(rng *rand.Rand, i int) soakQuery {
		m, q := soakZoneQuery(names, i, lowerCase)
		opt := m.SetEdns0(1232, false).IsEdns0()
		if i%2 == 0 {
			opt.Option = append(opt.Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: fmt.Sprintf("%016x", rng.Uint64())})
		} else {
			opt.Option = append(opt.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(127, 0, 0, 0)})
		}
		zone := soakZoneCheck(q)
		return soakQuery{wire: soakPack(m), check: func(r *dns.Msg) bool { return zone(r) && r.IsEdns0() != nil }}
	}
}

// soakDelegatedGen asks names that Consul DNS answers, through regiondns:
// NOERROR or NXDOMAIN is an answer; SERVFAIL, REFUSED and silence are not.
func soakDelegatedGen(names []string) soakGen {
	return func(_ *rand.Rand, i int) soakQuery {
		qtype := dns.TypeA
		if i%3 == 2 {
			qtype = dns.TypeSRV
		}
		m := NewQuery(names[i%len(names)], qtype)
		q := m.Question[0]
		return soakQuery{wire: soakPack(m), check: func(r *dns.Msg) bool {
			return r.Response && (r.Rcode == dns.RcodeSuccess || r.Rcode == dns.RcodeNameError) &&
				len(r.Question) == 1 && r.Question[0] == q
		}}
	}
}

// soakTCPGen is the pipelined TCP traffic: zone names, and every eighth
// query a delegated name, whose wait for Consul must not hold up the zone
// answers behind it.
func soakTCPGen(zone, delegated []string) soakGen {
	z, d := soakZoneGen(zone), soakDelegatedGen(delegated)
	return func(rng *rand.Rand, i int) soakQuery {
		if i%8 == 7 {
			return d(rng, i/8)
		}
		return z(rng, i)
	}
}

// soakBlackholeName returns a fresh name the soak's upstream never answers.
func soakBlackholeName(rng *rand.Rand) string {
	return fmt.Sprintf("%016x.%s.service.consul.", rng.Uint64(), soakBlackholeLabel)
}

// soakFloodGen asks a new name the upstream never answers each time, so
// that neither the cache nor single flight absorbs it.
func soakFloodGen(rng *rand.Rand, _ int) soakQuery {
	return soakQuery{wire: soakPack(NewQuery(soakBlackholeName(rng), dns.TypeA))}
}

// soakPadded returns a query for name padded (RFC 7830) to size octets.
func soakPadded(name string, size int) []byte {
	m := NewQuery(name, dns.TypeA)
	opt := m.SetEdns0(1232, false).IsEdns0()
	pad := &dns.EDNS0_PADDING{}
	opt.Option = append(opt.Option, pad)
	pad.Padding = make([]byte, max(size-len(soakPack(m)), 0))
	return soakPack(m)
}

// soakOversizeSizes are the sizes of the oversize UDP queries: past the
// 4 KiB no legal query needs, and up to the largest UDP datagram.
var soakOversizeSizes = []int{4200, 16 << 10, 65000}

// soakOversizeGen asks zone names in UDP datagrams far larger than a query.
func soakOversizeGen(names []string) soakGen {
	return func(_ *rand.Rand, i int) soakQuery {
		return soakQuery{wire: soakPadded(names[i%len(names)], soakOversizeSizes[i%len(soakOversizeSizes)])}
	}
}

// soakLoad is one class of clients and how to start them against a server.
type soakLoad struct {
	class *soakClass
	start func(ctx context.Context, wg *sync.WaitGroup, class *soakClass, server string) error
}

// soakUDPLoad returns the start of clients sending rate queries a second
// from src, spread over sockets sockets.
func soakUDPLoad(src string, rate float64, sockets int, timeout time.Duration, gen soakGen) func(context.Context, *sync.WaitGroup, *soakClass, string) error {
	return func(ctx context.Context, wg *sync.WaitGroup, class *soakClass, server string) error {
		for range sockets {
			if err := runUDP(ctx, wg, class, src, server, rate/float64(sockets), timeout, gen); err != nil {
				return err
			}
		}
		return nil
	}
}

// soakLoads returns the soak's classes of clients: the well-behaved ones,
// and the hostile ones when hostile is set.
func soakLoads(names, delegated []string, hostile bool) []soakLoad {
	loads := []soakLoad{
		{&soakClass{Name: "zone", Note: "UDP 400 q/s: A, AAAA, SRV, TXT of the clusters' names, SOA of the apex"},
			soakUDPLoad(soakGoodSrc, 400, 1, soakAnswerTimeout, soakZoneGen(names))},
		{&soakClass{Name: "mixed-case", Note: "UDP 100 q/s: the same in mixed case, half with the last label lower case (slow path)"},
			soakUDPLoad(soakGoodSrc, 100, 1, soakAnswerTimeout, soakMixedCaseGen(names))},
		{&soakClass{Name: "edns", Note: "UDP 100 q/s: the same with a COOKIE or a client-subnet option"},
			soakUDPLoad(soakGoodSrc, 100, 1, soakAnswerTimeout, soakEDNSGen(names))},
		{&soakClass{Name: "delegated", Note: "UDP 50 q/s: *.service.consul and *.node.consul names answered by Consul DNS"},
			soakUDPLoad(soakGoodSrc, 50, 1, soakAnswerTimeout, soakDelegatedGen(delegated))},
		{&soakClass{Name: "tcp", Note: "TCP 5 new connections/s, 8 pipelined queries each (one delegated)"},
			func(ctx context.Context, wg *sync.WaitGroup, class *soakClass, server string) error {
				runTCPPipelined(ctx, wg, class, soakGoodSrc, server, 5, 8, soakAnswerTimeout, soakTCPGen(names, delegated))
				return nil
			}},
	}
	if !hostile {
		return loads
	}
	return append(loads,
		soakLoad{&soakClass{Name: "flood", Hostile: true, Note: "UDP 8000 q/s from 4 sockets: a new name the upstream never answers each time"},
			soakUDPLoad(soakHostileSrc, 8000, 4, soakHostileTimeout, soakFloodGen)},
		soakLoad{&soakClass{Name: "bigtcp", Hostile: true, Note: "TCP 200 connections, each 16 pipelined 60 KiB queries for such names every 5 s"},
			func(ctx context.Context, wg *sync.WaitGroup, class *soakClass, server string) error {
				runBigTCP(ctx, wg, class, soakHostileSrc, server, soakBigTCP{
					Conns: 200, PerRound: 16, Size: 60 << 10, Round: 5 * time.Second, Timeout: soakHostileTimeout,
				})
				return nil
			}},
		soakLoad{&soakClass{Name: "oversize", Hostile: true, Note: "UDP 20 q/s: zone names in 4200, 16384 and 65000-octet datagrams"},
			soakUDPLoad(soakHostileSrc, 20, 1, soakHostileTimeout, soakOversizeGen(names))},
		soakLoad{&soakClass{Name: "idle", Hostile: true, Note: "TCP 2000 connections held open, opened again when closed (open at the end, opened in the window)"},
			func(ctx context.Context, wg *sync.WaitGroup, class *soakClass, server string) error {
				runIdleTCP(ctx, wg, class, soakHostileSrc, server, 2000)
				return nil
			}},
	)
}
