package policy

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// reading is the internal view of a region: its state, its leader instance
// and its passing replicas.
type reading struct {
	region   *Region
	view     RegionView
	leader   *Instance // leader or standby leader; nil if none
	replicas []Instance
}

// hasPrimary reports whether the region has a read-write leader. A conflict
// between two standby leaders resolved by the leader key is still a standby
// cluster: it must not count as a promotion.
func (r *reading) hasPrimary() bool {
	return r.leader != nil && r.leader.Role == RoleLeader
}

// claimsPrimary reports whether the region is a primary cluster: it has a
// read-write leader, or it is a promoted standby region between leaders
// (a switchover, a failover) whose next leader will be read-write too.
func (r *reading) claimsPrimary() bool {
	return r.hasPrimary() || r.view.Promoted
}

// Decide applies the region-aware policy to one cluster.
func Decide(in Input) Decision {
	if in.ROFallback == "" {
		in.ROFallback = FallbackLeader
	}
	if in.Layout == "" {
		in.Layout = LayoutDirect
	}
	main := read(&in.Main, in.WarningIsPassing)
	standby := read(&in.Standby, in.WarningIsPassing)
	standby.readPromotion(in.WarningIsPassing)
	drained, notApplied := drainRegions(&in.Control, &main, &standby)
	recheck := earliest(main.applyReads(in.Options, in.Now, in.WarningIsPassing),
		standby.applyReads(in.Options, in.Now, in.WarningIsPassing))

	active, passive, reason, split := chooseActive(&main, &standby)
	active, passive, reason, pin := applyPin(&in.Control, &main, &standby, active, passive, reason)
	d := Decision{
		Active:     active.view.Name,
		Passive:    passive.view.Name,
		Main:       main.view,
		Standby:    standby.view,
		SplitBrain: split,
		Stale:      main.view.Stale || standby.view.Stale,
		Reason:     reason,
	}

	if active.hasPrimary() {
		d.RW = writeEndpoints(in.Options, active)
	}
	d.RO = readEndpoints(in.Options, active, in.ROFallback, active.hasPrimary())
	if passive.leader != nil {
		d.PassiveRW = writeEndpoints(in.Options, passive)
	}
	d.PassiveRO = readEndpoints(in.Options, passive, FallbackLeader, passive.leader != nil)
	d.Pin, d.Drained, d.DrainNotApplied = pin, drained, notApplied
	d.Main.RO = readEndpoints(in.Options, &main, FallbackLeader, main.leader != nil)
	d.Standby.RO = readEndpoints(in.Options, &standby, FallbackLeader, standby.leader != nil)
	d.Sync, d.SyncReason = syncEndpoints(in.Options, active, &in.Control)
	d.Recheck = recheck
	return d
}

// earliest returns the earlier of two times, zero standing for none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// chooseActive returns the active and passive regions, why, and whether both
// regions claim to be primary.
func chooseActive(main, standby *reading) (active, passive *reading, reason string, split bool) {
	switch {
	case main.hasPrimary() && standby.claimsPrimary():
		what := "both regions have a leader"
		if !standby.hasPrimary() {
			what = "main region has a leader and the promoted standby region is electing one"
		}
		mt, st := main.view.Timeline, standby.view.Timeline
		switch {
		case mt > 0 && st > 0 && mt > st:
			return main, standby, fmt.Sprintf("split brain: %s; main region wins on timeline %d > %d", what, mt, st), true
		case mt > 0 && st > 0 && st > mt:
			return standby, main, fmt.Sprintf("split brain: %s; promoted standby region wins on timeline %d > %d", what, st, mt), true
		default:
			return standby, main, fmt.Sprintf("split brain: %s and timelines do not decide; promoted standby region wins", what), true
		}
	case main.hasPrimary():
		return main, standby, "main region is primary", false
	case standby.hasPrimary():
		return standby, main, "standby region was promoted; main region has no leader", false
	case standby.claimsPrimary():
		return standby, main, fmt.Sprintf("standby region was promoted and is electing a leader; main region is %s", main.view.State), false
	default:
		return main, standby, fmt.Sprintf("no leader: main region is %s, standby region is %s (not promoted)", main.view.State, standby.view.State), false
	}
}

// read classifies a region: its state, leader and passing replicas.
func read(r *Region, warningOK bool) reading {
	out := reading{region: r, view: RegionView{Name: r.Name, Stale: r.Stale || !r.Known, Index: r.Index}}
	if !r.Known {
		out.view.State = StateUnknown
		return out
	}
	var leaders, standbyLeaders []*Instance
	// Passing members tagged as leaders and as standby leaders, whatever
	// the lock says.
	var tagged [RoleLeader + 1]int
	for i := range r.Members {
		m := &r.Members[i]
		if passing(m.Health, warningOK) {
			tagged[m.Role]++
		}
		role, ok := memberRole(r, m, warningOK)
		if !ok {
			continue
		}
		if role != m.Role {
			// The lock made it a leader before its tags did.
			c := *m
			c.Role = role
			m = &c
		}
		switch role {
		case RoleLeader:
			leaders = append(leaders, m)
		case RoleStandbyLeader:
			standbyLeaders = append(standbyLeaders, m)
		case RoleReplica:
			out.replicas = append(out.replicas, *m)
		}
	}
	switch {
	case len(leaders) == 1:
		out.view.State = StatePrimary
		out.leader = leaders[0]
	case len(leaders) > 1:
		out.view.State = StateConflict
		out.leader = byLeaderKey(leaders, r.LeaderKey)
	case len(standbyLeaders) > 0:
		out.view.State = StateStandby
		out.leader = standbyLeaders[0]
		if len(standbyLeaders) > 1 {
			// Two standby leaders is the same conflict one level down; the
			// leader key of the standby cluster still names the real one.
			out.view.State = StateConflict
			out.leader = byLeaderKey(standbyLeaders, r.LeaderKey)
		}
	default:
		out.view.State = StateNone
	}
	if r.LeaderKeyRead && (tagged[RoleLeader] > 1 || tagged[RoleStandbyLeader] > 1) {
		// The lock picked the leader; the region still reports that
		// several members claim to lead.
		out.view.State = StateConflict
	}
	if out.leader != nil {
		out.view.Leader = out.leader.Member
		out.view.Timeline = r.Timelines[out.leader.Member]
	}
	slices.SortFunc(out.replicas, compareInstances)
	for _, rep := range out.replicas {
		out.view.Replicas = append(out.view.Replicas, rep.Member)
	}
	return out
}

// readPromotion marks a standby region promoted when its Patroni config no
// longer holds standby_cluster, it has no read-write leader yet, and its
// Patroni is running: a passing member, or a member key (during a role
// change every check of the region can be critical for a moment, while the
// session-bound member keys stay). Its timeline is then the highest of its
// members': the one its next leader will continue.
func (r *reading) readPromotion(warningOK bool) {
	if r.region.Config != ConfigPrimary || r.hasPrimary() || r.view.State == StateUnknown {
		return
	}
	alive := len(r.region.MemberKeys) > 0
	for _, m := range r.region.Members {
		alive = alive || passing(m.Health, warningOK)
	}
	if !alive {
		return
	}
	var tl int64
	for _, t := range r.region.Timelines {
		tl = max(tl, t)
	}
	r.view.Promoted = true
	r.view.Timeline = max(r.view.Timeline, tl)
}

// byLeaderKey returns the candidate that Patroni's leader key names, or nil:
// with two passing leaders and no key to tell them apart, answering either
// could send writes to the wrong one.
func byLeaderKey(candidates []*Instance, key string) *Instance {
	if key == "" {
		return nil
	}
	for _, c := range candidates {
		if c.Member == key {
			return c
		}
	}
	return nil
}

// passing reports whether an instance in health h may answer: passing, or
// warning when warning_is_passing is set. Decide and Settled both count
// health with it, so that a scope at rest is one Decide would answer from.
func passing(h Health, warningOK bool) bool {
	return h == HealthPassing || (warningOK && h == HealthWarning)
}

// writeEndpoints returns the endpoints that reach the region's leader.
func writeEndpoints(o Options, r *reading) []Endpoint {
	switch o.Layout {
	case LayoutPoolFleet:
		return poolEndpoints(r.region.Name, r.region.PoolRW, o.WarningIsPassing)
	case LayoutBouncerPerNode:
		return bouncerEndpoints(r.region, []Instance{*r.leader}, o.WarningIsPassing)
	default:
		return memberEndpoints(r.region.Name, []Instance{*r.leader})
	}
}

// readEndpoints returns the endpoints that reach the region's passing
// replicas, falling back to its leader as fb says.
func readEndpoints(o Options, r *reading, fb ROFallback, leaderOK bool) []Endpoint {
	var eps []Endpoint
	switch o.Layout {
	case LayoutPoolFleet:
		// The ro pool reaches replicas; with none passing it reaches nothing,
		// and ro answers the fallback like the other layouts.
		if len(r.replicas) > 0 {
			eps = poolEndpoints(r.region.Name, r.region.PoolRO, o.WarningIsPassing)
		}
	case LayoutBouncerPerNode:
		eps = bouncerEndpoints(r.region, r.replicas, o.WarningIsPassing)
	default:
		eps = memberEndpoints(r.region.Name, r.replicas)
	}
	if len(eps) == 0 && fb == FallbackLeader && leaderOK {
		return writeEndpoints(o, r)
	}
	return eps
}

func memberEndpoints(region string, members []Instance) []Endpoint {
	eps := make([]Endpoint, 0, len(members))
	for _, m := range members {
		eps = append(eps, Endpoint{
			Target: Label(m.Member), Region: region, Member: m.Member,
			Node: m.Node, Address: m.Address, Port: m.Port,
		})
	}
	return finish(eps)
}

// bouncerEndpoints returns the passing PgBouncers registered on the same
// Consul node as each member.
func bouncerEndpoints(r *Region, members []Instance, warningOK bool) []Endpoint {
	var eps []Endpoint
	for _, m := range members {
		for _, b := range r.Bouncers {
			if b.Node != m.Node || !passing(b.Health, warningOK) {
				continue
			}
			eps = append(eps, Endpoint{
				Target: Label(m.Member), Region: r.Name, Member: m.Member,
				Node: b.Node, Address: b.Address, Port: b.Port,
			})
		}
	}
	return finish(eps)
}

func poolEndpoints(region string, pool []Instance, warningOK bool) []Endpoint {
	var eps []Endpoint
	for _, b := range pool {
		if !passing(b.Health, warningOK) {
			continue
		}
		eps = append(eps, Endpoint{
			Target: Label(b.Node), Region: region, Node: b.Node,
			Address: b.Address, Port: b.Port,
		})
	}
	return finish(eps)
}

// finish sorts endpoints and makes their targets unique, so that the answer
// does not depend on the order Consul listed the instances in. The sort
// compares every field: endpoints equal on target, address and port but not
// on node would otherwise keep Consul's order.
func finish(eps []Endpoint) []Endpoint {
	slices.SortFunc(eps, func(a, b Endpoint) int {
		return cmp.Or(strings.Compare(a.Target, b.Target), a.Address.Compare(b.Address), cmp.Compare(a.Port, b.Port),
			strings.Compare(a.Region, b.Region), strings.Compare(a.Member, b.Member), strings.Compare(a.Node, b.Node))
	})
	eps = slices.Compact(eps)
	if needsRenaming(eps) {
		uniqueTargets(eps)
	}
	return eps
}

// needsRenaming reports whether sorted endpoints share a target, or one's
// target is a name label.
func needsRenaming(eps []Endpoint) bool {
	for i := range eps {
		if (i > 0 && eps[i].Target == eps[i-1].Target) || isNameLabel(eps[i].Target) {
			return true
		}
	}
	return false
}

// uniqueTargets renames the second and later of sorted endpoints sharing a
// target, and every endpoint whose target is a name label (a member named
// "ro" would shadow ro.<region>.<cluster>), to "<target>-<n>", n counting
// from 2 and skipping any name another endpoint already has and the name
// labels, so that every SRV target resolves to one endpoint and never
// names anything else.
func uniqueTargets(eps []Endpoint) {
	taken := make(map[string]bool, len(eps)+len(NameLabels))
	for _, e := range eps {
		taken[e.Target] = true
	}
	for _, l := range NameLabels {
		taken[l] = true
	}
	prev, n := "", 2
	for i := range eps {
		base := eps[i].Target
		if i == 0 || base != prev {
			prev, n = base, 2
			if !isNameLabel(base) {
				continue
			}
		}
		t := withSuffix(base, n)
		for taken[t] {
			n++
			t = withSuffix(base, n)
		}
		taken[t] = true
		eps[i].Target = t
		n++
	}
}

// withSuffix appends "-<n>" to a label, cutting the label so that the result
// stays within 63 octets.
func withSuffix(label string, n int) string {
	suffix := "-" + strconv.Itoa(n)
	return strings.TrimRight(label[:min(len(label), 63-len(suffix))], "-") + suffix
}

func compareInstances(a, b Instance) int {
	return cmp.Or(strings.Compare(a.Member, b.Member), strings.Compare(a.ID, b.ID))
}

// Label turns a Patroni member or Consul node name into a DNS label: lower
// case letters, digits and hyphens, at most 63 octets.
func Label(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-")
	if len(s) > 63 {
		s = strings.TrimRight(s[:63], "-")
	}
	if s == "" {
		s = "endpoint"
	}
	return s
}
