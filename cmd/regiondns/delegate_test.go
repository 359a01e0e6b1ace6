package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/caarlos0/env/v11"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/regiondns/regiondns/cache"
	"github.com/regiondns/regiondns/engine"
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

// defaultSettings returns the settings of an empty environment: every
// default.
func defaultSettings(t *testing.T) settings {
	t.Helper()
	var s settings
	if err := env.ParseWithOptions(&s, env.Options{Prefix: envPrefix, Environment: map[string]string{}}); err != nil {
		t.Fatal(err)
	}
	return s
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
	s := defaultSettings(t)
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
	s := defaultSettings(t)
	s.LocalRegion = "us"
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
	s.Delegation = false
	if _, err := newForwarder(s, bad, nil); err == nil || err.Error() != want {
		t.Errorf("start with delegation off: %v, want %q", err, want)
	}
}

// TestSharedConsulDNSOneSeries: two regions that list the same consul_dns
// address (at start, and after a reload) make one upstream and one series
// per metric: /metrics of the process's registry answers 200, without a
// duplicate-series error.
func TestSharedConsulDNSOneSeries(t *testing.T) {
	shared, other := startConsulDNS(t), startConsulDNS(t)
	s := defaultSettings(t)
	fwd, err := newForwarder(s, delegationConfig([]string{shared}, []string{shared}), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := newMetrics(testMetricsWatcher(t))
	m.registry.MustRegister(forward.NewCollector(fwd))
	h := newHTTPHandler(engine.New(&zones.Config{}, testMetricsWatcher(t), &cache.Store{}, engine.Options{}), m)
	req := new(dns.Msg)
	req.SetQuestion("web.service.consul.", dns.TypeA)
	if _, err := fwd.Delegate(req, false, netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	check := func(when string, addrs ...string) {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: /metrics answered %d: %s", when, rec.Code, rec.Body)
		}
		for _, addr := range addrs {
			for _, name := range []string{"regiondns_upstream_requests_total", "regiondns_upstream_errors_total", "regiondns_upstream_up",
				"regiondns_upstream_request_duration_seconds_count"} {
				series := fmt.Sprintf("%s{upstream=%q} ", name, addr)
				if n := strings.Count(rec.Body.String(), series); n != 1 {
					t.Errorf("%s: %d series %s, want 1", when, n, series)
				}
			}
		}
	}
	check("at start", shared)

	commit, err := reloadForwarder(s, fwd)(delegationConfig([]string{other, shared}, []string{shared, other}))
	if err != nil {
		t.Fatal(err)
	}
	commit()
	check("after a reload", shared, other)
}

// TestDelegationSettings: REGIONDNS_DELEGATION_DOMAINS,
// REGIONDNS_DELEGATION_CLIENTS and REGIONDNS_CACHE_MAX_BYTES are read
// into the resolver's and the cache's options, and a bad value stops the
// start with an error that names the variable.
func TestDelegationSettings(t *testing.T) {
	prefixes := func(ps ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, p := range ps {
			out = append(out, netip.MustParsePrefix(p))
		}
		return out
	}
	tests := []struct {
		name        string
		env         map[string]string
		wantDomains []string
		wantClients []netip.Prefix
		wantErr     string
	}{
		{name: "defaults", wantDomains: []string{"consul."},
			wantClients: prefixes("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")},
		{name: "alt_domain, addresses, unmasked prefix",
			env: map[string]string{
				"REGIONDNS_DELEGATION_DOMAINS": "consul, Alt.Example.",
				"REGIONDNS_DELEGATION_CLIENTS": "10.1.2.3, ::1,10.244.7.0/16",
			},
			wantDomains: []string{"consul.", "alt.example."}, wantClients: prefixes("10.1.2.3/32", "::1/128", "10.244.0.0/16")},
		{name: "bad prefix", env: map[string]string{"REGIONDNS_DELEGATION_CLIENTS": "10.0.0.0/8,pods"},
			wantErr: `REGIONDNS_DELEGATION_CLIENTS: "pods" is not valid; want CIDR prefixes`},
		{name: "address with a zone", env: map[string]string{"REGIONDNS_DELEGATION_CLIENTS": "fe80::1%eth0"},
			wantErr: `REGIONDNS_DELEGATION_CLIENTS: "fe80::1%eth0" is not valid`},
		{name: "empty entry", env: map[string]string{"REGIONDNS_DELEGATION_DOMAINS": "consul.,"},
			wantErr: `REGIONDNS_DELEGATION_DOMAINS: "" is not a domain name`},
		{name: "bad domain", env: map[string]string{"REGIONDNS_DELEGATION_DOMAINS": "a..b"},
			wantErr: `REGIONDNS_DELEGATION_DOMAINS: "a..b" is not a domain name`},
		{name: "cache bytes too small", env: map[string]string{"REGIONDNS_CACHE_MAX_BYTES": "65536"},
			wantErr: "REGIONDNS_CACHE_MAX_BYTES: 65536 is not valid; want at least 1048576 (1 MiB)"},
		{name: "cache bytes not a number", env: map[string]string{"REGIONDNS_CACHE_MAX_BYTES": "64MiB"},
			wantErr: "REGIONDNS_CACHE_MAX_BYTES: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			s, err := loadSettings()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("loadSettings: %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			opts, err := handlerOptions(s, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(opts.DelegationDomains, tt.wantDomains) || !slices.Equal(opts.DelegationClients, tt.wantClients) {
				t.Errorf("domains %v clients %v; want %v and %v", opts.DelegationDomains, opts.DelegationClients, tt.wantDomains, tt.wantClients)
			}
		})
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
	s := defaultSettings(t)
	s.LocalRegion = "us"
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
