package policy

import (
	"strconv"
	"strings"
)

// SyncKey is Patroni's sync key: the leader it was written for, the
// synchronous standbys (sync_standby, comma-separated there) and, in
// quorum commit mode (Patroni 4), the quorum.
type SyncKey struct {
	Leader   string   `json:"leader,omitempty"`
	Standbys []string `json:"sync_standby,omitempty"`
	Quorum   int      `json:"quorum,omitempty"`
}

// syncEndpoints returns what sync.<cluster> answers from the active region
// a, and why: the passing synchronous standbys that Patroni's sync key
// names, else a's read-write leader. A read-your-writes client is always
// right on the leader, so every doubt about the standbys answers it:
//
//   - not in synchronous mode (Patroni's config), or a standby cluster,
//     which has no synchronous standbys;
//   - a sync key written for another leader (Patroni's own /sync check
//     ignores it too);
//   - quorum commit with a quorum above zero: then a commit waits for only
//     some of the standbys listed, and no single one is sure to hold it;
//   - no listed standby passing, or all of them noloadbalance;
//   - the pool-fleet layout: a pool cannot be pointed at one standby.
//
// Without a read-write leader in a, sync answers nothing, like rw.
func syncEndpoints(o Options, a *reading, c *Control) ([]Endpoint, string) {
	if !a.hasPrimary() {
		return nil, "no read-write leader"
	}
	reg := a.region
	leader := func(why string) ([]Endpoint, string) { return writeEndpoints(o, a), "leader: " + why }
	sync := reg.Sync
	switch {
	case o.Layout == LayoutPoolFleet:
		return leader("a pool cannot reach one standby")
	case reg.Config == ConfigStandby:
		return leader("a standby cluster has no synchronous standbys")
	case !reg.SyncMode:
		return leader("not in synchronous mode")
	case sync.Leader == "":
		return leader("no sync key")
	case !strings.EqualFold(sync.Leader, a.leader.Member):
		return leader("the sync key names leader " + sync.Leader)
	case sync.Quorum > 0:
		return leader("quorum commit (quorum " + strconv.Itoa(sync.Quorum) + "): no single standby holds every commit")
	case len(sync.Standbys) == 0:
		return leader("no synchronous standby")
	}
	var serving []Instance
	var out []string
	for _, name := range sync.Standbys {
		m := a.replica(name)
		switch {
		case m == nil:
			out = append(out, name+" not a registered replica")
		case !passing(m.Health, o.WarningIsPassing):
			out = append(out, m.Member+" "+m.Health.String())
		case reg.MemberData[m.Member].NoLoadBalance:
			out = append(out, m.Member+" noloadbalance")
		case c.Drained(m.Member):
			out = append(out, m.Member+" drained")
		default:
			serving = append(serving, *m)
		}
	}
	var eps []Endpoint
	if o.Layout == LayoutBouncerPerNode {
		eps = bouncerEndpoints(reg, serving, o.WarningIsPassing)
	} else {
		eps = memberEndpoints(reg.Name, serving)
	}
	if len(eps) == 0 {
		why := "no passing synchronous standby"
		if len(out) > 0 {
			why += " (" + strings.Join(out, ", ") + ")"
		}
		return leader(why)
	}
	names := make([]string, len(serving))
	for i, m := range serving {
		names[i] = m.Member
	}
	why := "synchronous standby " + strings.Join(names, ", ")
	if len(names) > 1 {
		why = "synchronous standbys " + strings.Join(names, ", ")
	}
	if len(out) > 0 {
		why += "; left out " + strings.Join(out, ", ")
	}
	return eps, why
}

// replica returns the member of r registered as a replica under name,
// compared as PostgreSQL compares synchronous_standby_names (and Patroni
// the sync key): without regard to case. Nil when there is none.
func (r *reading) replica(name string) *Instance {
	for i := range r.region.Members {
		m := &r.region.Members[i]
		if m.Role == RoleReplica && strings.EqualFold(m.Member, name) {
			return m
		}
	}
	return nil
}
