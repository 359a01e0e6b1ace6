package e2e

// The fleet of the resilience scenarios (scenarios_resilience_test.go): one
// cluster per layout in both regions, expectations in terms of its members,
// and readers of regiondns's answers for its names.

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/miekg/dns"
)

// fleetZone is the zone of the resilience scenarios (ZoneYAML's default).
const fleetZone = "pg.example.internal."

// nameLabels are the four names of every cluster.
var nameLabels = []string{"rw", "ro", "passive-rw", "passive-ro"}

// followTimeout bounds every wait for regiondns to follow a change.
const followTimeout = 20 * time.Second

// fleetSetupTimeout bounds the wait for the fleet's checks to pass in the
// catalog. A check registered right after the federation started can stay
// critical in the catalog for over 20 s: a failed anti-entropy sync of the
// just-started agent is retried only after 15 s plus up to 15 s of stagger.
const fleetSetupTimeout = 40 * time.Second

// layoutFleet is one cluster per layout, each with a leader and a replica in
// the main region and a standby leader and a replica in the standby region,
// all registered on the datacenters' servers (as the Patroni nodes' agents).
type layoutFleet struct {
	F        *Federation
	Clusters []*fleetCluster
}

// fleetCluster is one cluster of an layoutFleet.
type fleetCluster struct {
	Label, Layout string
	Main, Standby *fleetSide
}

// fleetSide is a cluster's members and PgBouncers in one region.
type fleetSide struct {
	Region string
	// Leader is registered as leader (main) or standby leader (standby);
	// Replica as replica. Tests change their roles; the fields keep pointing
	// at the same members.
	Leader, Replica *PatroniMember
	// PoolRW and PoolRO are the pool-fleet layout's pools.
	PoolRW, PoolRO *Bouncer
}

// startLayoutFleet registers the fleet in f and waits until every check passes.
// Addresses are 127.<cluster>.<region>.<n>: members n = 1, 2, pools 101 (rw)
// and 102 (ro), so that every endpoint of the fleet is told apart by address.
func startLayoutFleet(t *testing.T, f *Federation) *layoutFleet {
	t.Helper()
	fl := &layoutFleet{F: f}
	layouts := []struct{ label, layout string }{
		{"orders", "direct"}, {"billing", "bouncer-per-node"}, {"ledger", "pool-fleet"},
	}
	type waiter interface {
		WaitCheck(time.Duration, string)
	}
	var wait []waiter
	for i, l := range layouts {
		c := &fleetCluster{Label: l.label, Layout: l.layout}
		for r, dc := range f.Datacenters() {
			s := &fleetSide{Region: dc.Region}
			lead := RoleLeader
			if dc.Region == "standby" {
				lead = RoleStandbyLeader
			}
			via := OnAgent
			if l.layout == "bouncer-per-node" {
				via = OnNode
			}
			addr := func(n int) string { return fmt.Sprintf("127.%d.%d.%d", i+1, r+1, n) }
			reg := func(n int, role Role) *PatroniMember {
				m := RegisterMember(t, dc.Server, MemberSpec{
					Scope: l.label, Name: fmt.Sprintf("%s-%s-%d", l.label, dc.Region, n),
					Address: addr(n), Role: role, Via: via,
				})
				wait = append(wait, m)
				if l.layout == "bouncer-per-node" {
					wait = append(wait, RegisterBouncerOnNode(t, m, BouncerSpec{}))
				}
				return m
			}
			s.Leader, s.Replica = reg(1, lead), reg(2, RoleReplica)
			if l.layout == "pool-fleet" {
				s.PoolRW = RegisterPool(t, dc.Server, BouncerSpec{Service: l.label + "-pgbouncer-rw", Address: addr(101)})
				s.PoolRO = RegisterPool(t, dc.Server, BouncerSpec{Service: l.label + "-pgbouncer-ro", Address: addr(102)})
				wait = append(wait, s.PoolRW, s.PoolRO)
			}
			if dc.Region == "main" {
				c.Main = s
			} else {
				c.Standby = s
			}
		}
		fl.Clusters = append(fl.Clusters, c)
	}
	for _, w := range wait {
		w.WaitCheck(fleetSetupTimeout, api.HealthPassing)
	}
	return fl
}

// ZoneYAML renders the fleet's zone file, regiondns talking to each
// datacenter's Agent (the client agent when there is one).
func (fl *layoutFleet) ZoneYAML() string {
	var cs []ZoneCluster
	for _, c := range fl.Clusters {
		cs = append(cs, ZoneCluster{Label: c.Label, MainScope: c.Label, Layout: c.Layout})
	}
	return fl.F.ZoneYAML(ZoneOptions{Zone: fleetZone, Clusters: cs})
}

// Write returns the sorted addresses a write name answers when m, of side
// s, is the leader.
func (c *fleetCluster) Write(s *fleetSide, m *PatroniMember) []string {
	if c.Layout == "pool-fleet" {
		return []string{s.PoolRW.Address}
	}
	return []string{m.Address} // a member's bouncer has the member's address
}

// Read returns the sorted addresses a read name answers when replicas, of
// side s, are its passing replicas (at least one).
func (c *fleetCluster) Read(s *fleetSide, replicas ...*PatroniMember) []string {
	if c.Layout == "pool-fleet" {
		return []string{s.PoolRO.Address}
	}
	var out []string
	for _, m := range replicas {
		out = append(out, m.Address)
	}
	slices.Sort(out)
	return out
}

// FQDN returns the fully qualified name "<name>.<label>.<zone>".
func (c *fleetCluster) FQDN(name string) string { return name + "." + c.Label + "." + fleetZone }

// answersWant is what a cluster's names must answer: the A addresses of some names
// (an empty list: NOERROR without records) and substrings that the TXT line
// of some names must contain.
type answersWant struct {
	A   map[string][]string
	TXT map[string][]string
}

// waitAnswers waits until r answers c's names as want says: A over UDP,
// TXT over TCP.
func waitAnswers(t *testing.T, r *Regiondns, c *fleetCluster, want answersWant) {
	t.Helper()
	WaitFor(t, followTimeout, func() (bool, string) {
		for _, name := range sortedKeys(want.A) {
			resp, err := Exchange(r.DNSAddr(), NewQuery(c.FQDN(name), dns.TypeA), false)
			if err != nil {
				return false, fmt.Sprintf("A %s: %v", c.FQDN(name), err)
			}
			got := AnswerAddrs(resp)
			if resp.Rcode != dns.RcodeSuccess || !slices.Equal(got, want.A[name]) {
				return false, fmt.Sprintf("A %s = %s %v, want NOERROR %v (TXT %q)",
					c.FQDN(name), dns.RcodeToString[resp.Rcode], got, want.A[name], txtLine(r, c, name))
			}
		}
		for _, name := range sortedKeys(want.TXT) {
			txt := txtLine(r, c, name)
			for _, sub := range want.TXT[name] {
				if !strings.Contains(txt, sub) {
					return false, fmt.Sprintf("TXT %s = %q, want it to contain %q", c.FQDN(name), txt, sub)
				}
			}
		}
		return true, ""
	})
}

// txtLine returns the TXT line of c's name, or why there is none.
func txtLine(r *Regiondns, c *fleetCluster, name string) string {
	resp, err := Exchange(r.DNSAddr(), NewQuery(c.FQDN(name), dns.TypeTXT), true)
	if err != nil {
		return fmt.Sprintf("(TXT query failed: %v)", err)
	}
	return strings.Join(AnswerTXT(resp), " | ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// answerLines returns the rcode and the answer and additional sections of one
// query as sorted lines, comparable between two servers: rotation changes
// the order of A records, never the set. The authority section is left out:
// the SOA serial is each process's own snapshot generation.
func answerLines(server, name string, qtype uint16, tcp bool) (string, error) {
	resp, err := Exchange(server, NewQuery(name, qtype), tcp)
	if err != nil {
		return "", err
	}
	var lines []string
	for _, rr := range resp.Answer {
		lines = append(lines, "answer "+rr.String())
	}
	for _, rr := range resp.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			lines = append(lines, "additional "+rr.String())
		}
	}
	slices.Sort(lines)
	return dns.RcodeToString[resp.Rcode] + " aa=" + fmt.Sprint(resp.Authoritative) + "\n" + strings.Join(lines, "\n"), nil
}
