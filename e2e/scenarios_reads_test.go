package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// The read-quality scenarios of issue 13 against real Consul, with members
// whose KV is shaped as Patroni writes it (member keys with xlog_location,
// replication_state and tags; status with optime; sync; config with
// synchronous_mode): lag, streaming, noloadbalance, the settle time, the
// sync name following the sync key, and the region-pinned read names
// across a promotion.

const (
	readsZone = "pg.example.internal."
	// readsSettle is the cluster's ro_lag_settle, in seconds.
	readsSettle = 3
	readsMiB    = int64(1) << 20
	// readsCluster is the cluster's "<label>.<zone>".
	readsCluster = "orders." + readsZone
)

// readsWorld is one direct cluster "orders": main-1 leads main-2 and main-3
// in the main region, standby-1 leads standby-2 in the standby region, with
// ro_max_lag 16MB, ro_require_streaming and ro_lag_settle 3.
type readsWorld struct {
	f                  *Federation
	r                  *Regiondns
	dns                string
	m1, m2, m3, s1, s2 *PatroniMember
}

func startReadsWorld(t *testing.T) *readsWorld {
	t.Helper()
	f := StartFederation(t, FederationOptions{ClientAgents: true})
	w := &readsWorld{f: f}
	member := func(dc *Datacenter, name, addr string, role Role) *PatroniMember {
		return RegisterOnAgent(t, dc.Server, MemberSpec{Scope: "orders", Name: name, Address: addr, Port: 5432, Role: role})
	}
	w.m1 = member(f.DC1, "main-1", "127.21.0.1", RoleLeader)
	w.m2 = member(f.DC1, "main-2", "127.21.0.2", RoleReplica)
	w.m3 = member(f.DC1, "main-3", "127.21.0.3", RoleReplica)
	w.s1 = member(f.DC2, "standby-1", "127.22.0.1", RoleStandbyLeader)
	w.s2 = member(f.DC2, "standby-2", "127.22.0.2", RoleReplica)
	for _, m := range w.members() {
		// Every member at 1 GiB of WAL, the leaders' status keys too.
		m.SetXLog(1 << 30)
		m.WaitCheck(fleetSetupTimeout, api.HealthPassing)
	}
	zone := f.ZoneYAML(ZoneOptions{Zone: readsZone, Clusters: []ZoneCluster{{Label: "orders", MainScope: "orders"}}})
	zone = coreWithClusterKey(t, zone, "orders", fmt.Sprintf("ro_max_lag: 16MB, ro_require_streaming: true, ro_lag_settle: %d", readsSettle))
	w.r = StartRegiondns(t, zone, nil)
	w.dns = w.r.DNSAddr()
	t.Cleanup(func() {
		if t.Failed() {
			if code, body, err := w.r.get("/debug/state"); err == nil {
				t.Logf("regiondns /debug/state (%d):\n%s", code, body)
			}
		}
	})
	return w
}

func (w *readsWorld) members() []*PatroniMember {
	return []*PatroniMember{w.m1, w.m2, w.m3, w.s1, w.s2}
}

func readsName(kind string) string { return kind + ".orders." + readsZone }

func ep(m *PatroniMember, region string) EndpointWant {
	return EndpointWant{Addr: m.Address, Port: m.Port, Member: m.Name, Region: region}
}

func addrsOf(ms ...*PatroniMember) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Address)
	}
	return out
}

// TestReads: in order, on one world, a replica leaves ro for lag at the
// KV change that shows it and returns only after the settle time, the TXT
// saying why; a replica not streaming and one tagged noloadbalance are left
// out; sync follows the sync key; ro.<region> stays in its region across
// the standby region's promotion.
func TestReads(t *testing.T) {
	w := startReadsWorld(t)
	m1, m2, m3, s1, s2 := w.m1, w.m2, w.m3, w.s1, w.s2
	steady := map[string]NameWant{
		readsName("ro"): {Endpoints: []EndpointWant{ep(m2, "main"), ep(m3, "main")}, ForbidAddrs: addrsOf(s1, s2)},
		readsName("ro.main"): {Endpoints: []EndpointWant{ep(m2, "main"), ep(m3, "main")}, ForbidAddrs: addrsOf(s1, s2),
			Cluster: readsCluster},
		readsName("ro.standby"): {Endpoints: []EndpointWant{ep(s2, "standby")}, ForbidAddrs: addrsOf(m1, m2, m3),
			Cluster: readsCluster},
		readsName("sync"): {Endpoints: []EndpointWant{ep(m1, "main")}, TXT: []string{"leader: not in synchronous mode"},
			ForbidAddrs: addrsOf(s1, s2)},
	}
	WaitNames(t, w.dns, followTimeout, steady)

	t.Run("lag", func(t *testing.T) {
		// One rewrite of main-3's member key, 48 MB behind the leader's
		// position: the next answer leaves it out.
		start := time.Now()
		m3.SetXLog(m1.XLog() - 48*readsMiB)
		out := map[string]NameWant{
			readsName("ro"): {Endpoints: []EndpointWant{ep(m2, "main")},
				TXT: []string{"left out main-3 lag 48 MB > 16 MB"}, ForbidAddrs: addrsOf(s1, s2)},
			readsName("ro.main"): {Endpoints: []EndpointWant{ep(m2, "main")}, TXT: []string{"left out main-3 lag 48 MB > 16 MB"},
				Cluster: readsCluster},
		}
		WaitNames(t, w.dns, followTimeout, out)
		t.Logf("main-3 left ro %s after its member key showed the lag", time.Since(start).Round(time.Millisecond))

		// Back under the limit, but not under half of it: it settles.
		back := time.Now()
		m3.SetXLog(m1.XLog() - 12*readsMiB)
		settling := map[string]NameWant{readsName("ro"): {Endpoints: []EndpointWant{ep(m2, "main")},
			TXT: []string{"left out main-3 lag 12 MB <= 16 MB, settling for 3s"}}}
		WaitNames(t, w.dns, followTimeout, settling)
		WaitNames(t, w.dns, followTimeout, map[string]NameWant{
			readsName("ro"): {Endpoints: []EndpointWant{ep(m2, "main"), ep(m3, "main")}, ForbidTXT: []string{"left out"}},
		})
		if d := time.Since(back); d < readsSettle*time.Second {
			t.Errorf("main-3 returned %s after it was back under the limit, want at least the settle time of %ds", d, readsSettle)
		}
		t.Logf("main-3 returned to ro %s after its lag went back under the limit", time.Since(back).Round(time.Millisecond))

		// Far behind, then all caught up (at most half the limit): back at
		// once, without the settle time.
		m3.SetXLog(m1.XLog() - 100*readsMiB)
		WaitNames(t, w.dns, followTimeout, map[string]NameWant{
			readsName("ro"): {Endpoints: []EndpointWant{ep(m2, "main")}, TXT: []string{"left out main-3 lag 100 MB > 16 MB"}},
		})
		caught := time.Now()
		m3.SetXLog(m1.XLog())
		WaitNames(t, w.dns, followTimeout, steady)
		if d := time.Since(caught); d >= readsSettle*time.Second {
			t.Logf("main-3 caught up returned only after %s (want well under the settle time: slow machine?)", d)
		}
	})

	t.Run("not streaming and noloadbalance", func(t *testing.T) {
		m2.SetReplicationState("in archive recovery")
		m3.SetNoLoadBalance(true)
		WaitNames(t, w.dns, followTimeout, map[string]NameWant{
			// Nothing serves: ro falls back to the leader.
			readsName("ro"): {Endpoints: []EndpointWant{ep(m1, "main")},
				TXT: []string{"left out main-2 not streaming (in archive recovery), main-3 noloadbalance"}},
		})
		waitMetrics(t, w.r, map[string]string{
			`regiondns_cluster_replicas{cluster="orders",region="main",state="not_streaming"}`: "1",
			`regiondns_cluster_replicas{cluster="orders",region="main",state="noloadbalance"}`: "1",
			`regiondns_cluster_replicas{cluster="orders",region="main",state="serving"}`:       "0",
			`regiondns_cluster_replicas{cluster="orders",region="standby",state="serving"}`:    "1",
		})
		waitExcluded(t, w.r, "main", map[string]string{"main-2": "not_streaming", "main-3": "noloadbalance"})
		m2.SetReplicationState("streaming")
		m3.SetNoLoadBalance(false)
		WaitNames(t, w.dns, followTimeout, steady)
	})

	t.Run("sync follows the sync key", func(t *testing.T) {
		m1.SetSynchronousMode(true)
		m1.PutSync(m2.Name)
		WaitNames(t, w.dns, followTimeout, map[string]NameWant{
			readsName("sync"): {Endpoints: []EndpointWant{ep(m2, "main")}, TXT: []string{"synchronous standby main-2"}},
		})
		start := time.Now()
		m1.PutSync(m3.Name)
		WaitNames(t, w.dns, followTimeout, map[string]NameWant{
			readsName("sync"): {Endpoints: []EndpointWant{ep(m3, "main")}, TXT: []string{"synchronous standby main-3"}},
		})
		t.Logf("sync followed the sync key in %s", time.Since(start).Round(time.Millisecond))
		// The sync standby fails its check: the leader.
		m3.SetHealthy(false)
		WaitNames(t, w.dns, followTimeout, map[string]NameWant{
			readsName("sync"): {Endpoints: []EndpointWant{ep(m1, "main")}, TXT: []string{"no passing synchronous standby (main-3 critical)"}},
		})
		m3.SetHealthy(true)
		m1.PutSync()
		m1.SetSynchronousMode(false)
		WaitNames(t, w.dns, followTimeout, steady)
	})

	t.Run("ro.<region> across a promotion", func(t *testing.T) {
		// The main region loses its leader; the standby cluster is
		// promoted. ro and passive-ro swap regions; ro.main and ro.standby
		// never answer the other region.
		pinned := map[string]NameWant{
			readsName("ro.main"): {Endpoints: []EndpointWant{ep(m2, "main"), ep(m3, "main")}, ForbidAddrs: addrsOf(s1, s2),
				Cluster: readsCluster},
			readsName("ro.standby"): {Endpoints: []EndpointWant{ep(s2, "standby")}, ForbidAddrs: addrsOf(m1, m2, m3),
				Cluster: readsCluster},
		}
		m1.SetHealthy(false)
		m1.WaitCheck(followTimeout, api.HealthCritical)
		WaitNames(t, w.dns, followTimeout, pinned)
		s1.Promote(s1.Timeline() + 1)
		after := map[string]NameWant{
			readsName("rw"):         {Endpoints: []EndpointWant{ep(s1, "standby")}},
			readsName("ro"):         {Endpoints: []EndpointWant{ep(s2, "standby")}, ForbidAddrs: addrsOf(m1)},
			readsName("passive-ro"): {Endpoints: []EndpointWant{ep(m2, "main"), ep(m3, "main")}},
		}
		for name, want := range pinned {
			after[name] = want
		}
		WaitNames(t, w.dns, followTimeout, after)
	})
}

// waitExcluded waits until /debug/state's decision of orders lists, for
// region, exactly the replicas of want, each with its state.
func waitExcluded(t *testing.T, r *Regiondns, region string, want map[string]string) {
	t.Helper()
	WaitFor(t, followTimeout, func() (bool, string) {
		code, body, err := r.get("/debug/state")
		if err != nil || code != http.StatusOK {
			return false, fmt.Sprintf("GET /debug/state: %d %v", code, err)
		}
		var st struct {
			Clusters []struct {
				Label    string `json:"label"`
				Decision map[string]json.RawMessage
			} `json:"clusters"`
		}
		if err := json.Unmarshal(body, &st); err != nil {
			return false, err.Error()
		}
		for _, c := range st.Clusters {
			if c.Label != "orders" {
				continue
			}
			var view struct {
				Excluded []struct{ Member, State, Why string }
			}
			if err := json.Unmarshal(c.Decision[region], &view); err != nil {
				return false, err.Error()
			}
			got := map[string]string{}
			for _, e := range view.Excluded {
				got[e.Member] = e.State
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				return false, fmt.Sprintf("excluded in %s = %v, want %v", region, got, want)
			}
			return true, ""
		}
		return false, "no cluster orders in /debug/state"
	})
}

// TestReadsRequestRate measures what following reads costs Consul: two
// regiondns read the same two clusters, whose members rewrite their member
// keys every loop (as Patroni's loop does, each at its own moment, the
// leaders their status key too); one regiondns has ro_max_lag on both, the
// other has no read options. The difference in requests per region is the
// cost of following the prefixes.
func TestReadsRequestRate(t *testing.T) {
	const (
		loop   = time.Second // Patroni's loop_wait, 10 s by default
		window = 30 * time.Second
	)
	f := StartFederation(t, FederationOptions{ClientAgents: true})
	var members []*PatroniMember
	var zc []ZoneCluster
	for i, label := range []string{"alpha", "beta"} {
		for r, dc := range f.Datacenters() {
			lead := RoleLeader
			if dc.Region == "standby" {
				lead = RoleStandbyLeader
			}
			for n := 1; n <= 3; n++ {
				role := RoleReplica
				if n == 1 {
					role = lead
				}
				if dc.Region == "standby" && n == 3 {
					break
				}
				members = append(members, RegisterOnAgent(t, dc.Server, MemberSpec{
					Scope: label, Name: fmt.Sprintf("%s-%s-%d", label, dc.Region, n),
					Address: fmt.Sprintf("127.%d.%d.%d", 30+i, r+1, n), Role: role,
				}))
			}
		}
		zc = append(zc, ZoneCluster{Label: label, MainScope: label})
	}
	for _, m := range members {
		m.WaitCheck(fleetSetupTimeout, api.HealthPassing)
	}
	plainZone := f.ZoneYAML(ZoneOptions{Zone: readsZone, Clusters: zc})
	readsZoneYAML := plainZone
	for _, c := range zc {
		readsZoneYAML = coreWithClusterKey(t, readsZoneYAML, c.Label, "ro_max_lag: 16MB")
	}
	plain := StartRegiondns(t, plainZone, nil)
	reads := StartRegiondns(t, readsZoneYAML, nil)

	// Patroni's loop: every member rewrites its key once per loop, at its
	// own moment; a leader's position moves on, and so its status key.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(rand.N(loop))
			tick := time.NewTicker(loop)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					m.SetXLog(m.XLog() + 4096)
				}
			}
		}()
	}
	t.Cleanup(func() { close(stop); wg.Wait() })

	time.Sleep(2 * loop) // both at rest, the loops running
	before := map[*Regiondns]map[string]uint64{plain: consulRequests(t, plain), reads: consulRequests(t, reads)}
	time.Sleep(window)
	for _, region := range []string{"main", "standby"} {
		rate := func(r *Regiondns) float64 {
			return float64(consulRequests(t, r)[region]-before[r][region]) / window.Seconds()
		}
		p, rd := rate(plain), rate(reads)
		// Per cluster: a leader and two replicas in main (3 member keys and
		// a status key per loop), a standby leader and a replica in standby
		// (2 and 1).
		writes := 4.0
		if region == "standby" {
			writes = 3.0
		}
		perCluster := (rd - p) / float64(len(zc))
		t.Logf("region %s: %.2f requests/s without read options, %.2f with ro_max_lag on %d clusters: %.2f per cluster for %.0f KV writes per loop of %s",
			region, p, rd, len(zc), perCluster, writes, loop)
		if perCluster > writes/loop.Seconds()*1.2 {
			t.Errorf("region %s: following reads costs %.2f requests/s per cluster, want at most one per KV write (%.1f/s)", region, perCluster, writes/loop.Seconds())
		}
		if perCluster < writes/loop.Seconds()/4 {
			t.Errorf("region %s: following reads costs %.2f requests/s per cluster: the prefix does not look followed", region, perCluster)
		}
	}
}

// consulRequests returns each region's count of Consul requests, from
// /debug/state.
func consulRequests(t *testing.T, r *Regiondns) map[string]uint64 {
	t.Helper()
	code, body, err := r.get("/debug/state")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /debug/state: %d %v", code, err)
	}
	var st struct {
		Regions []struct {
			Name     string `json:"name"`
			Requests uint64 `json:"requests"`
		} `json:"regions"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, reg := range st.Regions {
		out[reg.Name] = reg.Requests
	}
	return out
}
