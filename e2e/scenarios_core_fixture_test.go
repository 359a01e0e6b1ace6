package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// The world of the core scenarios: one federation (dc1 = region main, dc2 =
// region standby, members on the servers, regiondns on the client agents),
// one zone, one cluster per layout, and one regiondns serving all of them.
// The clusters are independent, so a scenario can change one per sub-test.

const (
	coreZone = "pg.example.internal."
	// coreSettle bounds how long regiondns may take to show a change in
	// Consul: a check interval (1 s) for an agent's check, a blocking query
	// round trip, a snapshot rebuild. Generous for -race on two cores.
	coreSettle = 15 * time.Second
	// coreNegativeTTL is the negative TTL of the zone ZoneYAML renders.
	coreNegativeTTL = 1
)

// coreLayouts are the layouts in the order sub-tests run.
var coreLayouts = []string{"direct", "bouncer-per-node", "pool-fleet"}

// coreCluster is one Patroni cluster in both regions and what its endpoints
// are in its layout.
type coreCluster struct {
	label, layout string
	// main[0] is the leader, the rest replicas; standby[0] is the standby
	// leader, standby[1] its replica.
	main, standby []*PatroniMember
	// bouncers are the bouncer-per-node PgBouncers by member name.
	bouncers map[string]*Bouncer
	// poolRW and poolRO are the pool-fleet instances by region.
	poolRW, poolRO map[string][]*Bouncer
}

// coreWorld is a running world.
type coreWorld struct {
	f        *Federation
	r        *Regiondns
	dns      string
	clusters map[string]*coreCluster // by layout
	// lonely is a direct cluster with only a main leader, ro_fallback none,
	// and nothing at all in the standby region.
	lonely *coreCluster
}

// startCoreWorld starts the federation, registers every cluster (main:
// leader + 2 replicas on timeline 1; standby: standby leader + 1 replica)
// and starts regiondns.
func startCoreWorld(t *testing.T) *coreWorld {
	t.Helper()
	start := time.Now()
	f := StartFederation(t, FederationOptions{ClientAgents: true})
	w := &coreWorld{f: f, clusters: map[string]*coreCluster{}}
	labels := map[string]string{"direct": "orders", "bouncer-per-node": "billing", "pool-fleet": "ledger"}
	var zc []ZoneCluster
	for i, layout := range coreLayouts {
		c := registerCoreCluster(t, f, labels[layout], layout, i+1)
		w.clusters[layout] = c
		z := ZoneCluster{Label: c.label, MainScope: c.label, Layout: layout}
		if layout == "direct" {
			// A standby scope of its own, with a character Patroni maps.
			z.StandbyScope = c.label + "_dr"
		}
		zc = append(zc, z)
	}
	// Its scope has a character Patroni writes as its code point in the
	// service name (Lonely+EU registers lonelyu0043eu).
	w.lonely = &coreCluster{label: "lonely", layout: "direct"}
	w.lonely.main = []*PatroniMember{RegisterOnAgent(t, f.DC1.Server, MemberSpec{
		Scope: "Lonely+EU", Name: "lonely-m1", Address: "127.0.9.1", Port: 5501, Role: RoleLeader,
	})}
	zc = append(zc, ZoneCluster{Label: "lonely", MainScope: "Lonely+EU"})

	zone := f.ZoneYAML(ZoneOptions{Zone: coreZone, Clusters: zc})
	zone = coreWithClusterKey(t, zone, "lonely", "ro_fallback: none")
	w.r = StartRegiondns(t, zone, nil)
	w.dns = w.r.DNSAddr()
	// Runs before regiondns stops (cleanups run last in, first out).
	t.Cleanup(func() {
		if t.Failed() {
			w.logState(t)
		}
	})
	t.Logf("core world up in %s", time.Since(start).Round(time.Millisecond))
	return w
}

// coreWithClusterKey adds "key: value" to the one-line mapping of cluster label
// in a zone file ZoneYAML rendered.
func coreWithClusterKey(t testing.TB, zone, label, kv string) string {
	t.Helper()
	prefix := "  - {label: " + label + ","
	lines := strings.Split(zone, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, prefix) && strings.HasSuffix(l, "}") {
			lines[i] = strings.TrimSuffix(l, "}") + ", " + kv + "}"
			return strings.Join(lines, "\n")
		}
	}
	t.Fatalf("cluster %s not found in zone file:\n%s", label, zone)
	return ""
}

// registerCoreCluster registers cluster label in both regions. Member
// addresses are 127.<10n+1>.0.x in main and 127.<10n+2>.0.x in standby,
// PostgreSQL ports 5400+10n+x, so that every endpoint is told apart.
func registerCoreCluster(t *testing.T, f *Federation, label, layout string, n int) *coreCluster {
	t.Helper()
	c := &coreCluster{label: label, layout: layout, bouncers: map[string]*Bouncer{},
		poolRW: map[string][]*Bouncer{}, poolRO: map[string][]*Bouncer{}}
	via := OnAgent
	if layout == "bouncer-per-node" {
		via = OnNode // each member needs a Consul node of its own
	}
	member := func(dc *Datacenter, scope, name string, ri, x int, role Role) *PatroniMember {
		m := RegisterMember(t, dc.Server, MemberSpec{
			Scope: scope, Name: name, Role: role, Via: via,
			Address: fmt.Sprintf("127.%d.0.%d", 10*n+ri, x), Port: 5400 + 10*n + x,
		})
		if layout == "bouncer-per-node" {
			c.bouncers[name] = RegisterBouncerOnNode(t, m, BouncerSpec{})
		}
		return m
	}
	standbyScope := label
	if layout == "direct" {
		standbyScope = label + "_dr"
	}
	c.main = []*PatroniMember{
		member(f.DC1, label, label+"-m1", 1, 1, RoleLeader),
		member(f.DC1, label, label+"-m2", 1, 2, RoleReplica),
		member(f.DC1, label, label+"-m3", 1, 3, RoleReplica),
	}
	c.standby = []*PatroniMember{
		member(f.DC2, standbyScope, label+"-s1", 2, 1, RoleStandbyLeader),
		member(f.DC2, standbyScope, label+"-s2", 2, 2, RoleReplica),
	}
	if layout == "pool-fleet" {
		for ri, dc := range f.Datacenters() {
			for x := 1; x <= 2; x++ {
				c.poolRW[dc.Region] = append(c.poolRW[dc.Region], RegisterPool(t, dc.Server, BouncerSpec{
					Service: label + "-pgbouncer-rw", Address: fmt.Sprintf("127.%d.1.%d", 10*n+ri+1, x),
				}))
				c.poolRO[dc.Region] = append(c.poolRO[dc.Region], RegisterPool(t, dc.Server, BouncerSpec{
					Service: label + "-pgbouncer-ro", Address: fmt.Sprintf("127.%d.2.%d", 10*n+ri+1, x),
				}))
			}
		}
	}
	return c
}

// name returns the FQDN of one of the cluster's four names.
func (c *coreCluster) name(kind string) string { return kind + "." + c.label + "." + coreZone }

// writeEndpoints returns what a name answering region's leader answers.
func (c *coreCluster) writeEndpoints(region string, leader *PatroniMember) []EndpointWant {
	switch c.layout {
	case "pool-fleet":
		return corePoolEndpoints(c.poolRW[region])
	case "bouncer-per-node":
		b := c.bouncers[leader.Name]
		return []EndpointWant{{Addr: b.Address, Port: b.Port, Member: leader.Name, Region: region}}
	default:
		return []EndpointWant{{Addr: leader.Address, Port: leader.Port, Member: leader.Name, Region: region}}
	}
}

// readEndpoints returns what a name answering region's passing replicas
// answers (they must be passing replicas of region).
func (c *coreCluster) readEndpoints(region string, replicas ...*PatroniMember) []EndpointWant {
	if c.layout == "pool-fleet" {
		if len(replicas) == 0 {
			return nil
		}
		return corePoolEndpoints(c.poolRO[region])
	}
	var out []EndpointWant
	for _, m := range replicas {
		out = append(out, c.writeEndpoints(region, m)...)
	}
	return out
}

func corePoolEndpoints(pool []*Bouncer) []EndpointWant {
	var out []EndpointWant
	for _, b := range pool {
		out = append(out, EndpointWant{Addr: b.Address, Port: b.Port})
	}
	return out
}

// addrs returns every address a region's endpoints of this cluster can have:
// its members', and its pools'.
func (c *coreCluster) addrs(region string) []string {
	var out []string
	members := c.main
	if region == "standby" {
		members = c.standby
	}
	for _, m := range members {
		out = append(out, m.Address)
	}
	for _, b := range append(append([]*Bouncer(nil), c.poolRW[region]...), c.poolRO[region]...) {
		out = append(out, b.Address)
	}
	return out
}

// coreTXT returns the TXT substrings of a name answering from region with the
// region in state: "<kind>: region <region> (<state>" and "fresh".
func coreTXT(kind, region, state string, more ...string) []string {
	return append([]string{fmt.Sprintf("%s: region %s (%s", kind, region, state), "; fresh"}, more...)
}

// steadyWants is what the four names answer in the steady state.
func (c *coreCluster) steadyWants() map[string]NameWant {
	m, s := c.main, c.standby
	return map[string]NameWant{
		c.name("rw"): {
			Endpoints:   c.writeEndpoints("main", m[0]),
			TXT:         coreTXT("rw", "main", "primary, leader "+m[0].Name+", timeline 1", "main region is primary"),
			ForbidAddrs: c.addrs("standby"),
		},
		c.name("ro"): {
			Endpoints:   c.readEndpoints("main", m[1], m[2]),
			TXT:         coreTXT("ro", "main", "primary"),
			ForbidAddrs: c.addrs("standby"),
		},
		c.name("passive-rw"): {
			Endpoints:   c.writeEndpoints("standby", s[0]),
			TXT:         coreTXT("passive-rw", "standby", "standby, leader "+s[0].Name),
			ForbidAddrs: c.addrs("main"),
		},
		c.name("passive-ro"): {
			Endpoints:   c.readEndpoints("standby", s[1]),
			TXT:         coreTXT("passive-ro", "standby", "standby"),
			ForbidAddrs: c.addrs("main"),
		},
	}
}

// waitSteady waits until the cluster answers as in the steady state.
func (c *coreCluster) waitSteady(t *testing.T, w *coreWorld) {
	t.Helper()
	WaitNames(t, w.dns, coreSettle, c.steadyWants())
}

// logState logs what Consul holds for every cluster and what regiondns
// decided, to tell a slow Consul from a wrong decision when a test fails.
func (w *coreWorld) logState(t *testing.T) {
	for _, dc := range w.f.Datacenters() {
		services, _, err := dc.Server.API().Catalog().Services(nil)
		if err != nil {
			t.Logf("%s: services: %v", dc.Name, err)
			continue
		}
		for name := range services {
			entries, _, err := dc.Server.API().Health().Service(name, "", false, nil)
			if err != nil {
				t.Logf("%s: health of %s: %v", dc.Name, name, err)
				continue
			}
			for _, e := range entries {
				t.Logf("%s: %s %s on %s %s:%d tags %v health %s", dc.Name, name, e.Service.ID, e.Node.Node,
					e.Service.Address, e.Service.Port, e.Service.Tags, e.Checks.AggregatedStatus())
			}
		}
	}
	if code, body, err := w.r.get("/debug/state"); err == nil {
		t.Logf("regiondns /debug/state (%d):\n%s", code, body)
	}
}
