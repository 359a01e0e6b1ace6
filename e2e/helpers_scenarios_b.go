package e2e

// Helpers of the resilience scenarios (scenarios_resilience_test.go): a fleet
// of one cluster per layout in both regions, expectations in terms of its
// members, and readers of regiondns's answers, /debug/state and /metrics.
// Every name here starts with "rs" so that it cannot collide with helpers of
// other scenario files.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/miekg/dns"
)

// rsZone is the zone of the resilience scenarios (ZoneYAML's default).
const rsZone = "pg.example.internal."

// rsNames are the four names of every cluster.
var rsNames = []string{"rw", "ro", "passive-rw", "passive-ro"}

// rsWaitTimeout bounds every wait for regiondns to follow a change.
const rsWaitTimeout = 20 * time.Second

// rsSetupTimeout bounds the wait for the fleet's checks to pass in the
// catalog. A check registered right after the federation started can stay
// critical in the catalog for over 20 s: a failed anti-entropy sync of the
// just-started agent is retried only after 15 s plus up to 15 s of stagger.
const rsSetupTimeout = 40 * time.Second

// rsFleet is one cluster per layout, each with a leader and a replica in the
// main region and a standby leader and a replica in the standby region, all
// registered on the datacenters' servers (as the Patroni nodes' agents).
type rsFleet struct {
	F        *Federation
	Clusters []*rsCluster
}

// rsCluster is one cluster of an rsFleet.
type rsCluster struct {
	Label, Layout string
	Main, Standby *rsSide
}

// rsSide is a cluster's members and PgBouncers in one region.
type rsSide struct {
	Region string
	// Leader is registered as leader (main) or standby leader (standby);
	// Replica as replica. Tests change their roles; the fields keep pointing
	// at the same members.
	Leader, Replica *PatroniMember
	// PoolRW and PoolRO are the pool-fleet layout's pools.
	PoolRW, PoolRO *Bouncer
}

// startRsFleet registers the fleet in f and waits until every check passes.
// Addresses are 127.<cluster>.<region>.<n>: members n = 1, 2, pools 101 (rw)
// and 102 (ro), so that every endpoint of the fleet is told apart by address.
func startRsFleet(t *testing.T, f *Federation) *rsFleet {
	t.Helper()
	fl := &rsFleet{F: f}
	layouts := []struct{ label, layout string }{
		{"orders", "direct"}, {"billing", "bouncer-per-node"}, {"ledger", "pool-fleet"},
	}
	type waiter interface {
		WaitCheck(time.Duration, string)
	}
	var wait []waiter
	for i, l := range layouts {
		c := &rsCluster{Label: l.label, Layout: l.layout}
		for r, dc := range f.Datacenters() {
			s := &rsSide{Region: dc.Region}
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
		w.WaitCheck(rsSetupTimeout, api.HealthPassing)
	}
	return fl
}

// ZoneYAML renders the fleet's zone file, regiondns talking to each
// datacenter's Agent (the client agent when there is one).
func (fl *rsFleet) ZoneYAML() string {
	var cs []ZoneCluster
	for _, c := range fl.Clusters {
		cs = append(cs, ZoneCluster{Label: c.Label, MainScope: c.Label, Layout: c.Layout})
	}
	return fl.F.ZoneYAML(ZoneOptions{Zone: rsZone, Clusters: cs})
}

// Write returns the sorted addresses a write name answers when m, of side
// s, is the leader.
func (c *rsCluster) Write(s *rsSide, m *PatroniMember) []string {
	if c.Layout == "pool-fleet" {
		return []string{s.PoolRW.Address}
	}
	return []string{m.Address} // a member's bouncer has the member's address
}

// Read returns the sorted addresses a read name answers when replicas, of
// side s, are its passing replicas (at least one).
func (c *rsCluster) Read(s *rsSide, replicas ...*PatroniMember) []string {
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
func (c *rsCluster) FQDN(name string) string { return name + "." + c.Label + "." + rsZone }

// rsWant is what a cluster's names must answer: the A addresses of some names
// (an empty list: NOERROR without records) and substrings that the TXT line
// of some names must contain.
type rsWant struct {
	A   map[string][]string
	TXT map[string][]string
}

// rsWaitAnswers waits until r answers c's names as want says: A over UDP,
// TXT over TCP.
func rsWaitAnswers(t *testing.T, r *Regiondns, c *rsCluster, want rsWant) {
	t.Helper()
	WaitFor(t, rsWaitTimeout, func() (bool, string) {
		for _, name := range rsSortedKeys(want.A) {
			resp, err := Exchange(r.DNSAddr(), NewQuery(c.FQDN(name), dns.TypeA), false)
			if err != nil {
				return false, fmt.Sprintf("A %s: %v", c.FQDN(name), err)
			}
			got := AnswerAddrs(resp)
			if resp.Rcode != dns.RcodeSuccess || !slices.Equal(got, want.A[name]) {
				return false, fmt.Sprintf("A %s = %s %v, want NOERROR %v (TXT %q)",
					c.FQDN(name), dns.RcodeToString[resp.Rcode], got, want.A[name], rsTXT(r, c, name))
			}
		}
		for _, name := range rsSortedKeys(want.TXT) {
			txt := rsTXT(r, c, name)
			for _, sub := range want.TXT[name] {
				if !strings.Contains(txt, sub) {
					return false, fmt.Sprintf("TXT %s = %q, want it to contain %q", c.FQDN(name), txt, sub)
				}
			}
		}
		return true, ""
	})
}

// rsTXT returns the TXT line of c's name, or why there is none.
func rsTXT(r *Regiondns, c *rsCluster, name string) string {
	resp, err := Exchange(r.DNSAddr(), NewQuery(c.FQDN(name), dns.TypeTXT), true)
	if err != nil {
		return fmt.Sprintf("(TXT query failed: %v)", err)
	}
	return strings.Join(AnswerTXT(resp), " | ")
}

func rsSortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// rsState is the part of /debug/state the scenarios read.
type rsState struct {
	Regions []struct {
		Name      string   `json:"name"`
		Stale     bool     `json:"stale"`
		LastError string   `json:"last_error"`
		Via       []string `json:"via"`
		Failing   int      `json:"failing"`
	} `json:"regions"`
	Clusters []struct {
		Label    string `json:"label"`
		Decision struct {
			Active     string `json:"active"`
			Passive    string `json:"passive"`
			SplitBrain bool   `json:"split_brain"`
			Stale      bool   `json:"stale"`
			Reason     string `json:"reason"`
		} `json:"decision"`
	} `json:"clusters"`
}

// rsWaitState waits until /debug/state satisfies cond, which says why not.
func rsWaitState(t *testing.T, r *Regiondns, cond func(st *rsState) string) {
	t.Helper()
	WaitFor(t, rsWaitTimeout, func() (bool, string) {
		code, body, err := r.get("/debug/state")
		if err != nil || code != http.StatusOK {
			return false, fmt.Sprintf("GET /debug/state: %d %v", code, err)
		}
		var st rsState
		if err := json.Unmarshal(body, &st); err != nil {
			return false, fmt.Sprintf("/debug/state: %v in %s", err, body)
		}
		if why := cond(&st); why != "" {
			return false, why + "\n/debug/state regions and decisions: " + st.summary()
		}
		return true, ""
	})
}

func (st *rsState) summary() string {
	b, _ := json.Marshal(st)
	return string(b)
}

// rsRegionCond returns a state condition on one region's Consul status.
func rsRegionCond(region string, cond func(stale bool, lastErr string, via []string, failing int) string) func(*rsState) string {
	return func(st *rsState) string {
		for _, r := range st.Regions {
			if r.Name == region {
				return cond(r.Stale, r.LastError, r.Via, r.Failing)
			}
		}
		return "no region " + region + " in /debug/state"
	}
}

// rsDecisionCond returns a state condition that every cluster's decision has
// active region active and split brain split.
func rsDecisionCond(fl *rsFleet, active string, split bool) func(*rsState) string {
	return func(st *rsState) string {
		for _, c := range fl.Clusters {
			found := false
			for _, cs := range st.Clusters {
				if cs.Label != c.Label {
					continue
				}
				found = true
				if d := cs.Decision; d.Active != active || d.SplitBrain != split {
					return fmt.Sprintf("cluster %s: active %q split_brain %t, want %q and %t (reason %q)",
						c.Label, d.Active, d.SplitBrain, active, split, d.Reason)
				}
			}
			if !found {
				return "no cluster " + c.Label + " in /debug/state"
			}
		}
		return ""
	}
}

// rsWaitMetrics waits until every series (`name{labels}` as the exposition
// format prints it) has the value want says.
func rsWaitMetrics(t *testing.T, r *Regiondns, want map[string]string) {
	t.Helper()
	WaitFor(t, rsWaitTimeout, func() (bool, string) {
		code, body, err := r.get("/metrics")
		if err != nil || code != http.StatusOK {
			return false, fmt.Sprintf("GET /metrics: %d %v", code, err)
		}
		values := map[string]string{}
		for _, line := range strings.Split(string(body), "\n") {
			if series, value, ok := strings.Cut(line, " "); ok && !strings.HasPrefix(line, "#") {
				values[series] = value
			}
		}
		for _, series := range rsSortedKeys(want) {
			if got, ok := values[series]; !ok || got != want[series] {
				return false, fmt.Sprintf("%s = %q (present %t), want %s", series, got, ok, want[series])
			}
		}
		return true, ""
	})
}

// rsAnswer returns the rcode and the answer and additional sections of one
// query as sorted lines, comparable between two servers: rotation changes
// the order of A records, never the set. The authority section is left out:
// the SOA serial is each process's own snapshot generation.
func rsAnswer(server, name string, qtype uint16, tcp bool) (string, error) {
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
