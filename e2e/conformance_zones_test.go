package e2e

import (
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// confClusters are the clusters of the conformance zone: each is a zone of
// its own.
var confClusters = []string{"orders", "big"}

// confZoneOf returns the apex of the zone whose SOA a negative answer for
// name (qtype) carries: the cluster's when name is under a cluster's apex,
// the zone's otherwise, and for DS at the cut, which the parent answers.
func confZoneOf(name string, qtype uint16) string {
	name = strings.ToLower(dns.Fqdn(name))
	for _, c := range confClusters {
		apex := c + "." + confZone
		if name == apex && qtype == dns.TypeDS {
			return confZone
		}
		if dns.IsSubDomain(apex, name) {
			return apex
		}
	}
	return confZone
}

// confClusterZones checks that every cluster is a zone of its own on the
// same server, consistent with its parent for a resolver that walks the
// tree: SOA and NS at the cut (the NS and glue the parent's), authoritative
// answers below it with no referral, negative answers with the cluster's
// SOA, ANY minimal, and zone transfers refused.
func confClusterZones(t *testing.T, w *confWorld) {
	apexSOA := confSOA(confExchangeTCP(t, w.Addr, confQuery(confZone, dns.TypeSOA, false)).Answer)
	apexNS := confExchangeTCP(t, w.Addr, confQuery(confZone, dns.TypeNS, false))
	if apexSOA == nil || len(apexNS.Answer) == 0 {
		t.Fatalf("apex SOA %v, NS %v", apexSOA, apexNS.Answer)
	}

	t.Run("SOA at the cut", func(t *testing.T) {
		for _, c := range confClusters {
			cut := c + "." + confZone
			for _, tcp := range []bool{false, true} {
				for _, edns := range []bool{false, true} {
					q := confQuery(confMixCase(cut), dns.TypeSOA, false)
					if edns {
						confEDNS(q, 1232, 0, false)
					}
					var resp *dns.Msg
					if tcp {
						resp = confExchangeTCP(t, w.Addr, q)
					} else {
						resp, _ = confExchangeUDP(t, w.Addr, q)
					}
					where := cut + " SOA over " + transport(tcp)
					soa := confSOA(resp.Answer)
					switch {
					case resp.Rcode != dns.RcodeSuccess || !resp.Authoritative || len(resp.Answer) != 1 || soa == nil:
						t.Errorf("%s: rcode %s AA %v answer %v; want one SOA in the answer section, AA", where,
							dns.RcodeToString[resp.Rcode], resp.Authoritative, resp.Answer)
					case !strings.EqualFold(soa.Hdr.Name, cut) || soa.Ns != apexSOA.Ns || soa.Mbox != apexSOA.Mbox ||
						soa.Refresh != apexSOA.Refresh || soa.Retry != apexSOA.Retry || soa.Expire != apexSOA.Expire ||
						soa.Minttl != apexSOA.Minttl || soa.Hdr.Ttl != apexSOA.Hdr.Ttl:
						t.Errorf("%s: %v, want the zone's SOA owned by the cluster (%v)", where, soa, apexSOA)
					case len(resp.Ns) != 0:
						t.Errorf("%s: authority %v, want none", where, resp.Ns)
					case resp.Question[0].Name != q.Question[0].Name:
						t.Errorf("%s: question %q, want %q echoed", where, resp.Question[0].Name, q.Question[0].Name)
					}
				}
			}
		}
	})

	t.Run("NS at the cut is the parent's, with its glue", func(t *testing.T) {
		for _, c := range confClusters {
			cut := c + "." + confZone
			resp := confExchangeTCP(t, w.Addr, confQuery(cut, dns.TypeNS, false))
			if resp.Rcode != dns.RcodeSuccess || !resp.Authoritative || len(resp.Ns) != 0 {
				t.Errorf("%s NS: rcode %s AA %v authority %v; want an authoritative answer", cut, dns.RcodeToString[resp.Rcode], resp.Authoritative, resp.Ns)
			}
			var got, want []string
			for _, rr := range resp.Answer {
				ns, ok := rr.(*dns.NS)
				if !ok || !strings.EqualFold(ns.Hdr.Name, cut) || ns.Hdr.Ttl != apexNS.Answer[0].Header().Ttl {
					t.Errorf("%s NS: %v, want NS records owned by the cut with the apex's TTL", cut, rr)
					continue
				}
				got = append(got, strings.ToLower(ns.Ns))
			}
			for _, rr := range apexNS.Answer {
				want = append(want, strings.ToLower(rr.(*dns.NS).Ns))
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s NS: %v, want the apex's %v", cut, got, want)
			}
			if g, w := confRRData(resp.Extra), confRRData(apexNS.Extra); !slices.Equal(g, w) {
				t.Errorf("%s NS: additional %v, want the apex's glue %v", cut, g, w)
			}
		}
	})

	t.Run("below the cut: authoritative answers, no referral", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			qtype uint16
			rcode int
		}{
			{"rw.orders." + confZone, dns.TypeA, dns.RcodeSuccess},
			{"ro.orders." + confZone, dns.TypeSRV, dns.RcodeSuccess},
			{"rw.orders." + confZone, dns.TypeTXT, dns.RcodeSuccess},
			{"ro.big." + confZone, dns.TypeA, dns.RcodeSuccess},
			{"main.orders." + confZone, dns.TypeA, dns.RcodeSuccess},
			{"nosuch.orders." + confZone, dns.TypeA, dns.RcodeNameError},
		} {
			for _, tcp := range []bool{false, true} {
				q := confQuery(tc.name, tc.qtype, true)
				var resp *dns.Msg
				if tcp {
					resp = confExchangeTCP(t, w.Addr, q)
				} else {
					resp, _ = confExchangeUDP(t, w.Addr, q)
				}
				where := tc.name + " " + dns.TypeToString[tc.qtype] + " over " + transport(tcp)
				if resp.Rcode != tc.rcode || !resp.Authoritative || resp.RecursionAvailable {
					t.Errorf("%s: rcode %s AA %v RA %v; want %s, AA, no RA", where, dns.RcodeToString[resp.Rcode],
						resp.Authoritative, resp.RecursionAvailable, dns.RcodeToString[tc.rcode])
				}
				for _, rr := range resp.Ns {
					if rr.Header().Rrtype == dns.TypeNS {
						t.Errorf("%s: NS %v in the authority section: a referral, from the server of both zones", where, rr)
					}
				}
			}
		}
	})

	t.Run("ANY at the cut is the SOA", func(t *testing.T) {
		resp, _ := confExchangeUDP(t, w.Addr, confQuery("orders."+confZone, dns.TypeANY, false))
		if len(resp.Answer) != 1 || confSOA(resp.Answer) == nil {
			t.Errorf("ANY at the cut: %v, want the SOA alone (RFC 8482)", resp.Answer)
		}
	})

	t.Run("zone transfers refused", func(t *testing.T) {
		for _, zone := range []string{confZone, "orders." + confZone, "big." + confZone} {
			for _, qtype := range []uint16{dns.TypeAXFR, dns.TypeIXFR} {
				resp := confExchangeTCP(t, w.Addr, confQuery(zone, qtype, false))
				if resp.Rcode != dns.RcodeRefused || len(resp.Answer) != 0 {
					t.Errorf("%s %s over TCP: rcode %s, %d records; want REFUSED", zone, dns.TypeToString[qtype], dns.RcodeToString[resp.Rcode], len(resp.Answer))
				}
			}
		}
	})
}
