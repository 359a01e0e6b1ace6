package main

import (
	"net"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/regiondns/regiondns/forward"
	"github.com/regiondns/regiondns/zones"
)

// startConsulDNS serves an A record for every name on UDP 127.0.0.1:0, as
// a Consul agent's DNS interface does, until the test ends.
func startConsulDNS(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, NotifyStartedFunc: func() { close(started) },
		Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(req)
			m.Answer = []dns.RR{&dns.A{
				Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30},
				A:   net.IPv4(10, 0, 0, 1),
			}}
			w.WriteMsg(m)
		})}
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

func delegationConfig(main, standby []string) *zones.Config {
	return &zones.Config{Regions: []zones.Region{
		{Name: "eu", Role: zones.RoleMain, ConsulDNS: main},
		{Name: "us", Role: zones.RoleStandby, ConsulDNS: standby},
	}}
}

// upstreamRequests returns regiondns_upstream_requests_total of each
// upstream in reg.
func upstreamRequests(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range families {
		if mf.GetName() != "regiondns_upstream_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return out
}

// TestReloadKeepsUpstreamMetrics: a reload that keeps an upstream's address
// keeps its counters, wherever the address moves; a new upstream starts
// at zero and a removed one is no longer reported.
func TestReloadKeepsUpstreamMetrics(t *testing.T) {
	kept, removed, added := startConsulDNS(t), startConsulDNS(t), startConsulDNS(t)
	s := settings{Delegation: true}
	fwd, err := newForwarder(s, delegationConfig([]string{kept}, []string{removed}), nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(forward.NewCollector(fwd))
	for _, name := range []string{"a.service.consul.", "b.service.consul."} {
		req := new(dns.Msg)
		req.SetQuestion(name, dns.TypeA)
		if m, err := fwd.Delegate(req, false, netip.Addr{}); err != nil || m.Rcode != dns.RcodeSuccess {
			t.Fatalf("Delegate(%s): %v, %v", name, m, err)
		}
	}
	if got := upstreamRequests(t, reg); got[kept] != 2 || got[removed] != 0 {
		t.Fatalf("before the reload: %v; want 2 requests to %s", got, kept)
	}

	// The kept address moves to the standby region's group.
	commit, err := reloadForwarder(s, fwd)(delegationConfig([]string{added}, []string{kept}))
	if err != nil {
		t.Fatal(err)
	}
	commit()
	got := upstreamRequests(t, reg)
	if len(got) != 2 || got[kept] != 2 || got[added] != 0 {
		t.Errorf("after the reload: %v; want %s still at 2, %s at 0, %s gone", got, kept, added, removed)
	}
}

// TestReloadForwarderChecksLocalRegion: a reload whose zone file no longer
// has the local region fails, naming the setting, and leaves the upstreams
// as they were; with delegation off it is checked all the same.
func TestReloadForwarderChecksLocalRegion(t *testing.T) {
	up := startConsulDNS(t)
	s := settings{Delegation: true, LocalRegion: "us"}
	fwd, err := newForwarder(s, delegationConfig(nil, []string{up}), nil)
	if err != nil {
		t.Fatal(err)
	}
	bad := &zones.Config{Regions: []zones.Region{
		{Name: "eu", Role: zones.RoleMain}, {Name: "ap", Role: zones.RoleStandby},
	}}
	const want = `REGIONDNS_LOCAL_REGION: "us" is not a region of the zone file; want one of eu, ap`
	for _, f := range []*forward.Forwarder{fwd, nil} {
		if _, err := reloadForwarder(s, f)(bad); err == nil || err.Error() != want {
			t.Errorf("reload: %v, want %q", err, want)
		}
	}
	if st := fwd.Stats(); len(st) != 1 || st[0].Addr != up {
		t.Errorf("upstreams after the failed reload: %+v, want %s alone", st, up)
	}
	if _, err := newForwarder(settings{LocalRegion: "us"}, bad, nil); err == nil || err.Error() != want {
		t.Errorf("start with delegation off: %v, want %q", err, want)
	}
}

// TestForwarderAsksForLocalDatacenter: names without a datacenter are
// asked for the datacenter of REGIONDNS_LOCAL_REGION's region, and for
// the new one after a reload that changes it.
func TestForwarderAsksForLocalDatacenter(t *testing.T) {
	asked := make(chan string, 4)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, NotifyStartedFunc: func() { close(started) },
		Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
			asked <- req.Question[0].Name
			m := new(dns.Msg)
			m.SetRcode(req, dns.RcodeNameError)
			w.WriteMsg(m)
		})}
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })

	cfg := func(usDC string) *zones.Config {
		c := delegationConfig(nil, []string{pc.LocalAddr().String()})
		c.Regions[0].Datacenter, c.Regions[1].Datacenter = "eu-1", usDC
		return c
	}
	s := settings{Delegation: true, LocalRegion: "us"}
	fwd, err := newForwarder(s, cfg("us-1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ask := func(name string) string {
		t.Helper()
		req := new(dns.Msg)
		req.SetQuestion(name, dns.TypeA)
		if _, err := fwd.Delegate(req, false, netip.Addr{}); err != nil {
			t.Fatal(err)
		}
		return <-asked
	}
	if got := ask("web.service.consul."); got != "web.service.us-1.consul." {
		t.Errorf("asked %s, want web.service.us-1.consul.", got)
	}
	commit, err := reloadForwarder(s, fwd)(cfg("us-2"))
	if err != nil {
		t.Fatal(err)
	}
	commit()
	if got := ask("db.service.consul."); got != "db.service.us-2.consul." {
		t.Errorf("after the reload asked %s, want db.service.us-2.consul.", got)
	}
}
