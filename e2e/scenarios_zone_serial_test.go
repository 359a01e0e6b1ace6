package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/miekg/dns"
)

// zoneState is what one look at a cluster zone found: its serial and every
// answer of its names that the serial versions.
type zoneState struct {
	serial  uint32
	answers string
}

// zoneLook reads the SOA serial of the zone of cluster label, then the A
// answers of its names, then the serial again; ok is false when the two
// serials differ (a rebuild in between: the look says nothing).
func zoneLook(addr, label, zone string) (zoneState, bool, error) {
	serial := func() (uint32, error) {
		resp, err := Exchange(addr, NewQuery(label+"."+zone, dns.TypeSOA), true)
		if err != nil {
			return 0, err
		}
		for _, rr := range resp.Answer {
			if soa, ok := rr.(*dns.SOA); ok {
				return soa.Serial, nil
			}
		}
		return 0, fmt.Errorf("no SOA at %s.%s: %v", label, zone, resp)
	}
	before, err := serial()
	if err != nil {
		return zoneState{}, false, err
	}
	var b strings.Builder
	for _, name := range []string{"rw", "ro", "passive-rw", "passive-ro"} {
		resp, err := Exchange(addr, NewQuery(name+"."+label+"."+zone, dns.TypeA), true)
		if err != nil {
			return zoneState{}, false, err
		}
		fmt.Fprintf(&b, "%s=%v ", name, AnswerAddrs(resp))
	}
	after, err := serial()
	if err != nil {
		return zoneState{}, false, err
	}
	return zoneState{serial: after, answers: b.String()}, before == after, nil
}

// TestClusterZoneSerialFollowsAnswers watches a cluster zone through a
// series of changes in both regions (a replica going and coming back, a
// member key rewritten with nothing else changed, a switchover, the standby
// leader going and coming back): its serial changes exactly when its
// answers change, always upwards, not at all for the rewrite; and a second
// regiondns started on the same data has the same serial.
func TestClusterZoneSerialFollowsAnswers(t *testing.T) {
	const zone, label = "pg.example.internal.", "orders"
	f := StartFederation(t, FederationOptions{})
	dc1, dc2 := f.DC1.Server, f.DC2.Server
	leader := RegisterOnAgent(t, dc1, MemberSpec{Scope: label, Name: "orders-1", Address: "127.0.40.1", Role: RoleLeader})
	replica := RegisterOnAgent(t, dc1, MemberSpec{Scope: label, Name: "orders-2", Address: "127.0.40.2"})
	dr := RegisterOnAgent(t, dc2, MemberSpec{Scope: label, Name: "orders-dr-1", Address: "127.0.41.1", Role: RoleStandbyLeader})
	drReplica := RegisterOnAgent(t, dc2, MemberSpec{Scope: label, Name: "orders-dr-2", Address: "127.0.41.2"})
	for _, m := range []*PatroniMember{leader, replica, dr, drReplica} {
		m.WaitCheck(20*time.Second, api.HealthPassing)
	}
	zoneYAML := f.ZoneYAML(ZoneOptions{Zone: zone, Clusters: []ZoneCluster{{Label: label, MainScope: label}}})
	r := StartRegiondns(t, zoneYAML, nil)
	addr := r.DNSAddr()

	// Every consistent look, in order, from a poller that runs through the
	// whole series.
	var (
		mu    sync.Mutex
		looks []zoneState
		stop  = make(chan struct{})
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			if st, ok, err := zoneLook(addr, label, zone); err == nil && ok {
				mu.Lock()
				if n := len(looks); n == 0 || looks[n-1] != st {
					looks = append(looks, st)
				}
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	latest := func() zoneState {
		mu.Lock()
		defer mu.Unlock()
		if len(looks) == 0 {
			return zoneState{}
		}
		return looks[len(looks)-1]
	}
	waitAnswers := func(what string, want map[string][]string) zoneState {
		t.Helper()
		WaitFor(t, 30*time.Second, func() (bool, string) {
			st := latest()
			for name, addrs := range want {
				if !strings.Contains(st.answers, fmt.Sprintf("%s=%v ", name, addrs)) {
					return false, fmt.Sprintf("%s: answers %q, want %s=%v", what, st.answers, name, addrs)
				}
			}
			return true, ""
		})
		return latest()
	}

	start := waitAnswers("start", map[string][]string{"rw": {"127.0.40.1"}, "ro": {"127.0.40.2"}, "passive-rw": {"127.0.41.1"}})
	if start.serial == 0 {
		t.Fatalf("serial 0 with every region read: %+v", start)
	}

	// A replica goes: ro falls back to the leader. The health change also
	// has the scope's KV prefix followed for a while, so that the rewrite
	// below is read.
	replica.SetHealthy(false)
	waitAnswers("replica down", map[string][]string{"ro": {"127.0.40.1"}})

	// A member key rewritten with a new WAL position: read, and nothing
	// changes, the serial included.
	pre := latest()
	idx := replica.RewriteMemberKey()
	WaitFor(t, 30*time.Second, func() (bool, string) {
		got := regionIndex(t, r, "main")
		return got >= idx, fmt.Sprintf("main region read up to index %d, want the rewrite's %d", got, idx)
	})
	WaitFor(t, 10*time.Second, func() (bool, string) {
		st, ok, err := zoneLook(addr, label, zone)
		if err != nil || !ok {
			return false, fmt.Sprintf("look after the rewrite: %v", err)
		}
		if st != pre {
			t.Errorf("after a member key rewrite that changes no answer: %+v, want %+v as before it", st, pre)
		}
		return true, ""
	})

	replica.SetHealthy(true)
	waitAnswers("replica back", map[string][]string{"ro": {"127.0.40.2"}})

	// A switchover: the leader demotes (releasing the lock), the replica
	// is promoted.
	leader.Demote()
	replica.Promote(2)
	waitAnswers("switchover", map[string][]string{"rw": {"127.0.40.2"}, "ro": {"127.0.40.1"}})

	// The standby leader goes and comes back.
	dr.SetHealthy(false)
	waitAnswers("standby leader down", map[string][]string{"passive-rw": {}})
	// Data at rest: the checks the switchover re-registered have run, and
	// their output (which regiondns does not read, but which moves
	// Consul's index) is in the catalog. Then a health change in each
	// region: the last write of each datacenter is one the answers follow.
	leader.WaitCheckOutput(10 * time.Second)
	replica.WaitCheckOutput(10 * time.Second)
	dr.SetHealthy(true)
	leader.SetHealthy(false)
	end := waitAnswers("standby leader back, the old leader down", map[string][]string{
		"passive-rw": {"127.0.41.1"}, "ro": {"127.0.40.2"}})

	close(stop)
	<-done
	mu.Lock()
	defer mu.Unlock()
	changes, serials := 0, 0
	for i := 1; i < len(looks); i++ {
		a, b := looks[i-1], looks[i]
		if d := b.serial - a.serial; d >= 1<<31 {
			t.Errorf("serial went back from %d to %d (%q -> %q)", a.serial, b.serial, a.answers, b.answers)
		}
		if (a.answers != b.answers) != (a.serial != b.serial) {
			t.Errorf("answers %q -> %q with serial %d -> %d: the serial must change exactly with the answers",
				a.answers, b.answers, a.serial, b.serial)
		}
		if a.answers != b.answers {
			changes++
		}
		if a.serial != b.serial {
			serials++
		}
	}
	t.Logf("%d looks, %d changes of the answers, %d of the serial; %d at start, %d at the end", len(looks), changes, serials, start.serial, end.serial)
	if changes < 6 {
		t.Errorf("%d changes of the answers seen, want at least 6", changes)
	}

	// A second instance started on the same data agrees.
	other := StartRegiondns(t, zoneYAML, nil)
	var otherState zoneState
	WaitFor(t, 30*time.Second, func() (bool, string) {
		st, ok, err := zoneLook(other.DNSAddr(), label, zone)
		otherState = st
		return err == nil && ok && st.answers == end.answers, fmt.Sprintf("second instance: %+v %v", st, err)
	})
	if otherState.serial != end.serial {
		_, a := r.Get("/debug/state")
		_, b := other.Get("/debug/state")
		t.Errorf("a second instance on the same data has serial %d, the first %d\nfirst: %s\nsecond: %s", otherState.serial, end.serial, a, b)
	}
}

// regionIndex returns the highest Consul index regiondns has read from
// region (/debug/state).
func regionIndex(t *testing.T, r *Regiondns, region string) uint64 {
	t.Helper()
	code, body := r.Get("/debug/state")
	if code != 200 {
		t.Fatalf("/debug/state: %d", code)
	}
	var st struct {
		Regions []struct {
			Name  string `json:"name"`
			Index uint64 `json:"index"`
		} `json:"regions"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	for _, reg := range st.Regions {
		if reg.Name == region {
			return reg.Index
		}
	}
	t.Fatalf("no region %s in /debug/state", region)
	return 0
}
