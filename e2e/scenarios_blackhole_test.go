package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/miekg/dns"
)

// blackholeNoticed bounds how long regiondns may take to leave an agent
// that stopped answering (its liveness checks take at most 5 s) and to read
// the change through the other region's agent, on top of the Consul check
// interval that turns the failed member critical.
const blackholeNoticed = 10 * time.Second

// pauseAgent stops a's processes with SIGSTOP: the kernel still accepts
// connections on its ports, and nothing answers them, as with an agent
// behind a blackholing network. The test's cleanup sends SIGCONT (a
// stopped process could not stop on SIGINT).
func pauseAgent(t *testing.T, a *Agent) {
	t.Helper()
	a.mu.Lock()
	cmd := a.cmd
	a.mu.Unlock()
	if cmd == nil {
		t.Fatalf("consul agent %s is not running", a.Name)
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP consul agent %s: %v", a.Name, err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGCONT) })
}

// blackholeRegion is the part of /debug/state's region this test reads.
type blackholeRegion struct {
	Name      string   `json:"name"`
	Stale     bool     `json:"stale"`
	LastError string   `json:"last_error"`
	Via       []string `json:"via"`
}

// regionState returns region's status from r's /debug/state.
func regionState(r *Regiondns, region string) (blackholeRegion, error) {
	code, body, err := r.get("/debug/state")
	if err != nil || code != http.StatusOK {
		return blackholeRegion{}, fmt.Errorf("GET /debug/state: %d %v", code, err)
	}
	var st struct {
		Regions []blackholeRegion `json:"regions"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return blackholeRegion{}, err
	}
	for _, reg := range st.Regions {
		if reg.Name == region {
			return reg, nil
		}
	}
	return blackholeRegion{}, fmt.Errorf("no region %s in /debug/state", region)
}

// waitRW waits until rw.orders answers addr.
func waitRW(t *testing.T, r *Regiondns, timeout time.Duration, addr string) {
	t.Helper()
	WaitFor(t, timeout, func() (bool, string) {
		resp, err := Exchange(r.DNSAddr(), NewQuery("rw.orders.pg.example.internal.", dns.TypeA), false)
		if err != nil {
			return false, err.Error()
		}
		if got := AnswerAddrs(resp); !slices.Equal(got, []string{addr}) {
			return false, fmt.Sprintf("rw.orders answers %v, want [%s]", got, addr)
		}
		return true, ""
	})
}

// waitVia waits until region is read, fresh, through via alone.
func waitVia(t *testing.T, r *Regiondns, timeout time.Duration, region, via string) {
	t.Helper()
	WaitFor(t, timeout, func() (bool, string) {
		st, err := regionState(r, region)
		if err != nil {
			return false, err.Error()
		}
		if st.Stale || !slices.Equal(st.Via, []string{via}) {
			return false, fmt.Sprintf("%s: stale %t via %v (last error %q), want fresh via [%s]", region, st.Stale, st.Via, st.LastError, via)
		}
		return true, ""
	})
}

// TestScenarioAgentBlackholed: the main region's client agent, which
// regiondns reads the main region through, is stopped with SIGSTOP while
// regiondns's blocking queries wait on it (the default wait of 60 s). A
// failover in the main region right after still reaches rw within
// blackholeNoticed, read through the standby region's agent with ?dc=dc1.
func TestScenarioAgentBlackholed(t *testing.T) {
	f := StartFederation(t, FederationOptions{ClientAgents: true})
	leader := RegisterMember(t, f.DC1.Server, MemberSpec{Scope: "orders", Name: "orders-main-1", Address: "127.1.1.1", Role: RoleLeader})
	replica := RegisterMember(t, f.DC1.Server, MemberSpec{Scope: "orders", Name: "orders-main-2", Address: "127.1.1.2", Role: RoleReplica})
	standby := RegisterMember(t, f.DC2.Server, MemberSpec{Scope: "orders", Name: "orders-standby-1", Address: "127.1.2.1", Role: RoleStandbyLeader})
	for _, m := range []*PatroniMember{leader, replica, standby} {
		m.WaitCheck(40*time.Second, api.HealthPassing)
	}
	r := StartRegiondns(t, f.ZoneYAML(ZoneOptions{Clusters: []ZoneCluster{{Label: "orders", MainScope: "orders"}}}), nil)
	own, fallback := f.DC1.Client.HTTPURL(), f.DC2.Client.HTTPURL()+"?dc=dc1"
	waitRW(t, r, 20*time.Second, leader.Address)
	waitVia(t, r, 20*time.Second, "main", own)
	// The blocking queries are parked on the agent now: the reads of the
	// state above and below come a wait time apart otherwise.

	t.Log("dc1's client agent is stopped (SIGSTOP), then the main leader fails over")
	pauseAgent(t, f.DC1.Client)
	start := time.Now()
	leader.SetHealthy(false)
	replica.Promote(2)
	waitRW(t, r, blackholeNoticed, replica.Address)
	t.Logf("rw answered the new leader %v after the agent stopped", time.Since(start).Round(time.Millisecond))
	waitVia(t, r, 5*time.Second, "main", fallback)
}
