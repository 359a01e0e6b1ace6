package patroni_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regiondns/regiondns/e2e"
)

// TestPatroniTwoRegions runs the scenarios in order on one environment (see
// the package documentation): each starts from the state the one before it
// left, so a failed step stops the rest.
func TestPatroniTwoRegions(t *testing.T) {
	if os.Getenv("REGIONDNS_E2E_PATRONI") != "1" {
		t.Skip("set REGIONDNS_E2E_PATRONI=1 to run (make e2e-patroni does, after installing Patroni, PostgreSQL and PgBouncer)")
	}
	start := time.Now()
	e := startEnv(t)
	e.result(t, "environment up in %.1fs (5 Patroni members, 9 PgBouncers, 9 Consul agents, regiondns)", time.Since(start).Seconds())
	steps := []struct {
		name string
		run  func(*testing.T, *env)
	}{
		{"SteadyState", testSteadyState},
		{"Switchover", testSwitchover},
		{"Failover", testFailover},
		{"StandbyPromotion", testStandbyPromotion},
		{"SplitBrain", testSplitBrain},
		{"ConsulAgentsStopped", testConsulAgentsStopped},
	}
	for _, s := range steps {
		stepStart := time.Now()
		ok := t.Run(s.name, func(t *testing.T) { s.run(t, e) })
		e.result(t, "step %s: %s in %.1fs", s.name, map[bool]string{true: "passed", false: "FAILED"}[ok], time.Since(stepStart).Seconds())
		if !ok {
			t.Fatalf("step %s failed; the steps after it start from its end state, so they are not run", s.name)
		}
	}
	e.result(t, "total %.1fs", time.Since(start).Seconds())
	e.writeResults(t)
}

// view is what the names should answer: the active region's leader and
// passing replicas, and the passive region's.
type view struct {
	active, passive         string // region names
	leader, passiveLeader   *member
	replicas, passiveReplic []*member
}

// addrs returns the sorted addresses of members.
func addrs(ms ...*member) []string {
	var out []string
	for _, m := range ms {
		if m != nil {
			out = append(out, m.Addr)
		}
	}
	slices.Sort(out)
	return out
}

// expectA returns the A answers of every name of the three clusters in v:
// direct and bouncer-per-node answer the members' addresses (a node's
// PgBouncer listens on its member's address), pool-fleet the region's pools
// (RO falling back to RW without a passing replica), and a read name falls
// back to the leader without a passing replica.
func (e *env) expectA(v view) map[string][]string {
	read := func(leader *member, replicas []*member) []string {
		if len(replicas) > 0 {
			return addrs(replicas...)
		}
		return addrs(leader)
	}
	poolOf := func(region, kind string, ok bool) []string {
		if !ok || region == "" {
			return []string{}
		}
		return []string{e.pools[region+"-"+kind].Addr}
	}
	poolRead := func(region string, leader *member, replicas []*member) []string {
		if len(replicas) > 0 {
			return poolOf(region, "ro", true)
		}
		return poolOf(region, "rw", leader != nil)
	}
	want := map[string][]string{}
	for _, c := range []string{direct, perNode} {
		want[fqdn("rw", c)] = addrs(v.leader)
		want[fqdn("ro", c)] = read(v.leader, v.replicas)
		want[fqdn("passive-rw", c)] = addrs(v.passiveLeader)
		want[fqdn("passive-ro", c)] = read(v.passiveLeader, v.passiveReplic)
	}
	want[fqdn("rw", pool)] = poolOf(v.active, "rw", v.leader != nil)
	want[fqdn("ro", pool)] = poolRead(v.active, v.leader, v.replicas)
	want[fqdn("passive-rw", pool)] = poolOf(v.passive, "rw", v.passiveLeader != nil)
	want[fqdn("passive-ro", pool)] = poolRead(v.passive, v.passiveLeader, v.passiveReplic)
	for k, a := range want {
		if a == nil {
			want[k] = []string{}
		}
	}
	return want
}

// waitReplicated writes a marker row on leader and waits until member has it.
func (e *env) waitReplicated(t *testing.T, leader, m *member, marker string) {
	t.Helper()
	if _, err := where(leader.Addr, e.pgPort, marker); err != nil {
		t.Fatalf("write marker on %s: %v", leader.Name, err)
	}
	e2e.WaitFor(t, waitTimeout, func() (bool, string) {
		got, err := psql(m.Addr, e.pgPort, fmt.Sprintf("SELECT count(*) FROM probe WHERE note = '%s'", marker))
		if err != nil || got != "1" {
			return false, fmt.Sprintf("marker %q on %s: %q %v", marker, m.Name, got, err)
		}
		return true, ""
	})
}

// testSteadyState: writes through rw land on the main leader, reads through ro
// on a replica, and passive-rw reaches the standby leader, read-only.
func testSteadyState(t *testing.T, e *env) {
	m1, m2, m3, s1, s2 := e.main[0], e.main[1], e.main[2], e.standby[0], e.standby[1]
	waitA(t, e.expectA(view{active: "main", passive: "standby", leader: m1, replicas: []*member{m2, m3},
		passiveLeader: s1, passiveReplic: []*member{s2}}))
	for _, c := range []string{direct, perNode, pool} {
		waitWhere(t, access{name: fqdn("rw", c)}, "steady rw "+c, m1.Addr+"|f")
		waitWhere(t, access{name: fqdn("ro", c)}, "", m2.Addr+"|t", m3.Addr+"|t")
	}
	for _, c := range []string{direct, perNode} {
		waitWhere(t, access{name: fqdn("passive-rw", c)}, "", s1.Addr+"|t")
		waitWhere(t, access{name: fqdn("passive-ro", c)}, "", s2.Addr+"|t")
		ro := access{name: fqdn("passive-rw", c)}
		if _, err := ro.run("must fail"); err == nil || !strings.Contains(err.Error(), "read-only") {
			t.Errorf("a write through passive-rw.%s: err %v, want a read-only transaction error", c, err)
		}
	}
	// The standby region's RW pool resolves rw.acme: the active leader.
	waitWhere(t, access{name: fqdn("passive-rw", pool)}, "steady passive-rw pool", m1.Addr+"|f")
	e.waitReplicated(t, m1, s2, "steady marker")

	// Plain Consul DNS agrees on the leaders (the comparison's baseline).
	consulWant := map[string]*member{
		"master." + scope + ".service.dc1.consul":         m1,
		"standby-leader." + scope + ".service.dc2.consul": s1,
	}
	for name, want := range consulWant {
		e2e.WaitFor(t, waitTimeout, func() (bool, string) {
			got, err := consulDNS(e.fed.DC1.Server, name)
			return err == nil && slices.Equal(got, []string{want.Addr}), fmt.Sprintf("Consul DNS %s = %v %v", name, got, err)
		})
	}
	t.Logf("rw.%s TXT: %s", direct, lookupTXT(fqdn("rw", direct)))
}

// testSwitchover: patronictl switchover main-1 → main-2, and back and
// forth (switchovers() in all, ending on main-2); rw follows each.
func testSwitchover(t *testing.T, e *env) {
	m1, m2 := e.main[0], e.main[1]
	n := switchovers()
	for i := range n {
		from, to := m1, m2
		if i%2 == 1 {
			from, to = m2, m1
		}
		name := "switchover"
		if n > 1 {
			name = fmt.Sprintf("switchover %d/%d", i+1, n)
		}
		e.switchover(t, name, from, to)
	}
}

// switchover measures patronictl switchover from → to in the main region.
func (e *env) switchover(t *testing.T, name string, from, to *member) {
	m3, s1, s2 := e.main[2], e.standby[0], e.standby[1]
	e.measure(t, transition{
		name: name, from: from, to: to, keyAgent: e.fed.DC1.Server, kvAgent: e.fed.DC1.Server,
		consulAgent: e.fed.DC1.Server, consulName: "master." + scope + ".service.dc1.consul",
		pool: e.pools["main-rw"],
	}, func() {
		out := from.patronictl(t, "switchover", "--leader", from.Name, "--candidate", to.Name, "--force")
		t.Logf("patronictl switchover: %s", strings.TrimSpace(out))
	})
	from.waitRole(t, setupTimeout, "replica")
	waitA(t, e.expectA(view{active: "main", passive: "standby", leader: to, replicas: []*member{from, m3},
		passiveLeader: s1, passiveReplic: []*member{s2}}))
	for _, c := range afterChange() {
		waitWhere(t, access{name: fqdn("rw", c)}, name+" rw "+c, to.Addr+"|f")
		waitWhere(t, access{name: fqdn("ro", c)}, "", from.Addr+"|t", m3.Addr+"|t")
	}
	waitWhere(t, access{name: fqdn("passive-rw", direct)}, "", s1.Addr+"|t")
	// The standby leader keeps streaming, now in cascade through main-1
	// (or from main-1 itself).
	e.waitReplicated(t, to, s1, name+" marker")
}

// testFailover: main-2's Patroni and PostgreSQL are killed; main-1 takes
// over once the leader key expires (main-3 has nofailover); rw follows.
func testFailover(t *testing.T, e *env) {
	m1, m2, m3, s1, s2 := e.main[0], e.main[1], e.main[2], e.standby[0], e.standby[1]
	e.measure(t, transition{
		name: "failover", from: m2, to: m1, keyAgent: e.fed.DC1.Server, kvAgent: e.fed.DC1.Server,
		consulAgent: e.fed.DC1.Server, consulName: "master." + scope + ".service.dc1.consul",
		pool: e.pools["main-rw"],
	}, m2.crash)
	st := m1.waitRole(t, setupTimeout, "master")
	t.Logf("main-1 leads on timeline %d", st.Timeline)
	waitA(t, e.expectA(view{active: "main", passive: "standby", leader: m1, replicas: []*member{m3},
		passiveLeader: s1, passiveReplic: []*member{s2}}))
	for _, c := range afterChange() {
		waitWhere(t, access{name: fqdn("rw", c)}, "after failover rw "+c, m1.Addr+"|f")
		waitWhere(t, access{name: fqdn("ro", c)}, "", m3.Addr+"|t")
	}
	e.waitReplicated(t, m1, s1, "failover marker")
}

// testStandbyPromotion: the main region stops; rw answers nothing (the
// standby leader is never rw before a promotion); the standby cluster is
// promoted with patronictl edit-config; rw moves there and writes succeed.
func testStandbyPromotion(t *testing.T, e *env) {
	m1, m3, s1, s2 := e.main[0], e.main[2], e.standby[0], e.standby[1]
	// Make sure the standby has everything main-1 wrote before it goes.
	e.waitReplicated(t, m1, s2, "before promotion marker")
	m1.stop(t)
	m3.stop(t)
	waitA(t, e.expectA(view{active: "main", passive: "standby",
		passiveLeader: s1, passiveReplic: []*member{s2}}))
	t.Logf("main region stopped: rw.%s TXT: %s", direct, lookupTXT(fqdn("rw", direct)))

	e.measure(t, transition{
		name: "promotion", to: s1, kvAgent: e.fed.DC2.Server,
		consulAgent: e.fed.DC2.Server, consulName: "master." + scope + ".service.dc2.consul",
		pool: e.pools["standby-rw"],
	}, func() {
		out := s1.patronictl(t, "edit-config", "--force", "--set", "standby_cluster=null")
		t.Logf("patronictl edit-config: %s", strings.TrimSpace(out))
	})
	st := s1.waitRole(t, setupTimeout, "master")
	t.Logf("standby-1 leads on timeline %d", st.Timeline)
	// Plain Consul DNS has no name that moves across regions.
	mainName := "master." + scope + ".service.dc1.consul"
	got, err := consulDNS(e.fed.DC1.Server, mainName)
	e.result(t, "promotion:   plain Consul DNS %s (what main-region clients of Consul DNS ask) = %v (err %v): they must be re-pointed at dc2 by hand",
		mainName, got, err)
	s2.waitRole(t, setupTimeout, "replica")
	waitA(t, e.expectA(view{active: "standby", passive: "main", leader: s1, replicas: []*member{s2}}))
	for _, c := range afterChange() {
		waitWhere(t, access{name: fqdn("rw", c)}, "after promotion rw "+c, s1.Addr+"|f")
		waitWhere(t, access{name: fqdn("ro", c)}, "", s2.Addr+"|t")
	}
	// The main region's RW pool follows too: its backend is rw.acme.
	if poolsFollowRW() {
		waitWhere(t, access{b: e.pools["main-rw"]}, "after promotion main pool", s1.Addr+"|f")
	}
}

// poolsFollowRW reports whether the PgBouncer pools are expected to follow a
// change of their backend name: only with the zone check on. Without it a
// pool resolves its backend again only when it opens a server connection,
// and may keep one to the old leader for as long as it lives: the failure
// the zone check is for, whose figures measure records.
func poolsFollowRW() bool { return zoneCheckPeriod() != "0" }

// afterChange returns the clusters whose reads and writes a step checks
// after a leader change: every layout, but the pool fleet when the pools do
// not follow (poolsFollowRW).
func afterChange() []string {
	if !poolsFollowRW() {
		return []string{direct, perNode}
	}
	return []string{direct, perNode, pool}
}

// debugState is the part of /debug/state the tests read.
type debugState struct {
	Regions []struct {
		Name  string   `json:"name"`
		Stale bool     `json:"stale"`
		Via   []string `json:"via"`
	} `json:"regions"`
	Clusters []struct {
		Label    string `json:"label"`
		Decision struct {
			Active     string `json:"active"`
			SplitBrain bool   `json:"split_brain"`
			Stale      bool   `json:"stale"`
			Reason     string `json:"reason"`
		} `json:"decision"`
	} `json:"clusters"`
}

func (e *env) state(t *testing.T) debugState {
	t.Helper()
	code, body := e.rdns.Get("/debug/state")
	if code != http.StatusOK {
		t.Fatalf("/debug/state: %d %s", code, body)
	}
	var st debugState
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("/debug/state: %v", err)
	}
	return st
}

// metric returns the value of one series of /metrics, or "".
func (e *env) metric(t *testing.T, series string) string {
	t.Helper()
	_, body := e.rdns.Get("/metrics")
	for _, line := range strings.Split(string(body), "\n") {
		if s, v, ok := strings.Cut(line, " "); ok && s == series {
			return v
		}
	}
	return ""
}

// sampler queries names every 100 ms in the background until stopped, and
// reports every answer that differs from want (an error counts).
type sampler struct {
	stop chan struct{}
	done chan []string
}

func sample(want map[string][]string) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan []string, 1)}
	go func() {
		var bad []string
		n := 0
		for {
			for name, w := range want {
				got, err := lookupA(name)
				if err != nil {
					// A lost UDP answer (the machine is busy) is asked again
					// over TCP, as a resolver would retry: only a wrong or
					// missing answer counts.
					got, err = lookupATCP(name)
				}
				if err != nil || !slices.Equal(got, w) {
					bad = append(bad, fmt.Sprintf("%s %s = %v (err %v), want %v",
						time.Now().Format("15:04:05.000"), name, got, err, w))
				}
			}
			n++
			select {
			case <-s.stop:
				s.done <- append(bad, fmt.Sprintf("(%d rounds)", n))
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return s
}

// recorder polls a lookup every 20 ms in the background and keeps every
// change of answer.
type recorder struct {
	stop chan struct{}
	done chan []answerChange
}

func record(lookup func() ([]string, error)) *recorder {
	r := &recorder{stop: make(chan struct{}), done: make(chan []answerChange, 1)}
	go func() {
		var seq []answerChange
		last := ""
		for {
			a := answerString(lookup())
			if a != last {
				seq = append(seq, answerChange{time.Now(), a})
				last = a
			}
			select {
			case <-r.stop:
				r.done <- seq
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return r
}

// finish stops the recorder and returns the answers seen.
func (r *recorder) finish() []answerChange {
	close(r.stop)
	return <-r.done
}

// finish stops the sampler and fails t for every differing answer.
func (s *sampler) finish(t *testing.T, what string) {
	t.Helper()
	close(s.stop)
	out := <-s.done
	rounds, bad := out[len(out)-1], out[:len(out)-1]
	if len(bad) > 0 {
		t.Errorf("%s: %d answers differed %s:\n%s", what, len(bad), rounds, strings.Join(bad, "\n"))
		return
	}
	t.Logf("%s: every answer the same %s", what, rounds)
}

// rwNames returns the rw names of the three clusters and their answers when
// leader leads region.
func (e *env) rwNames(region string, leader *member) map[string][]string {
	return map[string][]string{
		fqdn("rw", direct):  {leader.Addr},
		fqdn("rw", perNode): {leader.Addr},
		fqdn("rw", pool):    {e.pools[region+"-rw"].Addr},
	}
}

// testSplitBrain: the old main region comes back as a primary after the
// promotion. Patroni starts main-1 as a replica and promotes it when it takes
// the leader key, so it comes back on the same timeline as the promoted
// region (both branched from the last main timeline): rw stays on the
// promoted region by the equal-timeline rule, and /debug/state, /metrics and
// TXT say split brain. Then a switchover inside the promoted region puts it
// on a higher timeline, and rw follows its new leader on the timeline rule.
func testSplitBrain(t *testing.T, e *env) {
	m1, m3, s1, s2 := e.main[0], e.main[2], e.standby[0], e.standby[1]
	smp := sample(e.rwNames("standby", s1))
	m1.start(t)
	m3.start(t)
	mst := m1.waitRole(t, setupTimeout, "master")
	m3.waitRole(t, setupTimeout, "replica")
	// main-1 is a primary in its own region again: a real split brain.
	waitWhere(t, access{name: fqdn("passive-rw", direct)}, "split brain main-1", m1.Addr+"|f")
	waitA(t, e.expectA(view{active: "standby", passive: "main", leader: s1, replicas: []*member{s2},
		passiveLeader: m1, passiveReplic: []*member{m3}}))
	smp.finish(t, "rw while the old main region came back")
	sst, err := s1.status()
	if err != nil {
		t.Fatal(err)
	}
	e.result(t, "split brain: main-1 back as primary on timeline %d, standby-1 primary on timeline %d", mst.Timeline, sst.Timeline)
	e.waitSplitBrain(t, "standby")
	e.result(t, "split brain: rw.%s TXT: %s", direct, lookupTXT(fqdn("rw", direct)))
	for _, c := range afterChange() {
		waitWhere(t, access{name: fqdn("rw", c)}, "split brain rw "+c, s1.Addr+"|f")
	}
	// What plain Consul DNS gives: each datacenter's own leader, both
	// writable; a client picks a region by the name it asks.
	for _, dc := range e.fed.Datacenters() {
		name := fmt.Sprintf("master.%s.service.%s.consul", scope, dc.Name)
		got, err := consulDNS(e.fed.DC1.Server, name)
		e.result(t, "split brain:   plain Consul DNS %s = %v (err %v)", name, got, err)
	}

	// While the promoted region has no leader between standby-1's demotion
	// and standby-2's promotion, it is still a primary cluster (its config
	// has no standby_cluster): rw must answer nothing for that moment, never
	// main-1, the losing primary.
	t.Log("switchover inside the promoted region: standby-1 -> standby-2, a higher timeline")
	rwRec := record(func() ([]string, error) { return lookupA(fqdn("rw", direct)) })
	passiveRec := record(func() ([]string, error) { return lookupA(fqdn("passive-rw", direct)) })
	t0 := time.Now()
	s1.patronictl(t, "switchover", "--leader", s1.Name, "--candidate", s2.Name, "--force")
	s1.waitRole(t, setupTimeout, "replica")
	st2 := s2.waitRole(t, setupTimeout, "master")
	waitA(t, e.expectA(view{active: "standby", passive: "main", leader: s2, replicas: []*member{s1},
		passiveLeader: m1, passiveReplic: []*member{m3}}))
	e.result(t, "split brain: switchover standby-1 -> standby-2 (timeline %d), answers from the patronictl call on:", st2.Timeline)
	rwSeq := rwRec.finish()
	e.result(t, "split brain:   rw.%s: %s", direct, changes(rwSeq, t0))
	for _, c := range rwSeq {
		if strings.Contains(c.answer, m1.Addr) {
			t.Errorf("rw.%s answered the losing primary main-1 (%s) during the switchover in the promoted region: %s",
				direct, m1.Addr, changes(rwSeq, t0))
			break
		}
	}
	e.result(t, "split brain:   passive-rw.%s: %s", direct, changes(passiveRec.finish(), t0))
	wantTXT := fmt.Sprintf("wins on timeline %d > %d", st2.Timeline, mst.Timeline)
	e2e.WaitFor(t, waitTimeout, func() (bool, string) {
		txt := lookupTXT(fqdn("rw", direct))
		return strings.Contains(txt, wantTXT), fmt.Sprintf("TXT rw.%s = %q, want %q", direct, txt, wantTXT)
	})
	e.waitSplitBrain(t, "standby")
	e.result(t, "split brain: after a switchover in the promoted region: rw.%s TXT: %s", direct, lookupTXT(fqdn("rw", direct)))
	for _, c := range afterChange() {
		waitWhere(t, access{name: fqdn("rw", c)}, "split brain higher timeline rw "+c, s2.Addr+"|f")
	}
}

// waitSplitBrain waits until every cluster reports a split brain won by
// region in its TXT line, /metrics and /debug/state.
func (e *env) waitSplitBrain(t *testing.T, region string) {
	t.Helper()
	for _, c := range []string{direct, perNode, pool} {
		e2e.WaitFor(t, waitTimeout, func() (bool, string) {
			txt := lookupTXT(fqdn("rw", c))
			return strings.Contains(txt, "split brain") && strings.Contains(txt, "region "+region),
				fmt.Sprintf("TXT rw.%s = %q, want region %s and split brain", c, txt, region)
		})
		want := map[string]string{
			fmt.Sprintf("regiondns_cluster_split_brain{cluster=%q}", c):                     "1",
			fmt.Sprintf("regiondns_cluster_active_region{cluster=%q,region=%q}", c, region): "1",
		}
		for series, v := range want {
			e2e.WaitFor(t, waitTimeout, func() (bool, string) {
				got := e.metric(t, series)
				return got == v, fmt.Sprintf("%s = %q, want %s", series, got, v)
			})
		}
	}
	e2e.WaitFor(t, waitTimeout, func() (bool, string) {
		st := e.state(t)
		for _, c := range st.Clusters {
			if d := c.Decision; d.Active != region || !d.SplitBrain {
				return false, fmt.Sprintf("/debug/state cluster %s: active %q split_brain %t (%s)", c.Label, d.Active, d.SplitBrain, d.Reason)
			}
		}
		return len(st.Clusters) == 3, fmt.Sprintf("/debug/state has %d clusters", len(st.Clusters))
	})
}

// testConsulAgentsStopped: the Consul client agents regiondns reads are
// killed while Patroni keeps its own agents: first dc1's (regiondns reads
// dc1 through dc2's agent with ?dc=dc1, fresh), then dc2's too (both
// regions stale). Sampled every 100 ms, the answers never change.
func testConsulAgentsStopped(t *testing.T, e *env) {
	s2 := e.standby[1]
	want := e.rwNames("standby", s2)
	waitA(t, want)

	smp := sample(want)
	e.fed.DC1.Client.Kill()
	fallback := e.fed.DC2.Client.HTTPURL() + "?dc=dc1"
	e2e.WaitFor(t, waitTimeout, func() (bool, string) {
		for _, r := range e.state(t).Regions {
			if r.Name == "main" {
				return !r.Stale && slices.Equal(r.Via, []string{fallback}),
					fmt.Sprintf("region main: stale %t via %v, want fresh via %s", r.Stale, r.Via, fallback)
			}
		}
		return false, "no region main in /debug/state"
	})
	time.Sleep(8 * time.Second) // sampling: the answers must not move
	smp.finish(t, "rw with dc1's agent killed (read through dc2 with ?dc=dc1)")

	smp = sample(want)
	e.fed.DC2.Client.Kill()
	e2e.WaitFor(t, waitTimeout, func() (bool, string) {
		st := e.state(t)
		for _, r := range st.Regions {
			if !r.Stale {
				return false, fmt.Sprintf("region %s not stale yet (via %v)", r.Name, r.Via)
			}
		}
		txt := lookupTXT(fqdn("rw", direct))
		return strings.Contains(txt, "stale"), fmt.Sprintf("TXT rw.%s = %q, want stale", direct, txt)
	})
	time.Sleep(5 * time.Second) // sampling: the last known answers stay
	smp.finish(t, "rw with both agents regiondns reads killed (stale)")
	e.result(t, "agents stopped: rw.%s TXT: %s", direct, lookupTXT(fqdn("rw", direct)))
	// Patroni kept its DCS: the database is still writable through rw.
	for _, c := range afterChange() {
		waitWhere(t, access{name: fqdn("rw", c)}, "agents stopped rw "+c, s2.Addr+"|f")
	}
}
