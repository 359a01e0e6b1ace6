package policy

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// MemberKey is what Patroni's member key (members/<name>) says about a
// member's reads.
type MemberKey struct {
	// XLogLocation is xlog_location: a primary's current WAL position, a
	// replica's greatest of its received and replayed positions; 0 when
	// not written.
	XLogLocation int64 `json:"xlog_location,omitempty"`
	// ReplayLSN and ReceiveLSN are replay_lsn and receive_lsn, which
	// Patroni 4.1 and later write for replicas; 0 when not written.
	ReplayLSN  int64 `json:"replay_lsn,omitempty"`
	ReceiveLSN int64 `json:"receive_lsn,omitempty"`
	// ReplicationState is replication_state, which Patroni 3.1 and later
	// write for replicas ("streaming", "in archive recovery"); empty when
	// not written.
	ReplicationState string `json:"replication_state,omitempty"`
	// NoLoadBalance is the member's noloadbalance tag.
	NoLoadBalance bool `json:"noloadbalance,omitempty"`
}

// replayed returns the replica's position as Patroni's /replica?lag=
// compares it with the leader's: the replayed position, which member keys
// carry as replay_lsn since Patroni 4.1; before, xlog_location, the
// greater of received and replayed.
func (k MemberKey) replayed() int64 {
	if k.ReplayLSN > 0 {
		return k.ReplayLSN
	}
	return k.XLogLocation
}

// ReplicaState is whether a replica serves reads, and if not, why.
type ReplicaState string

// The replica states, in the order a replica is tested for them: the first
// that applies is its state.
const (
	// ReplicaUnhealthy: its Consul health is not passing.
	ReplicaUnhealthy ReplicaState = "unhealthy"
	// ReplicaNoLoadBalance: its member key has the noloadbalance tag.
	ReplicaNoLoadBalance ReplicaState = "noloadbalance"
	// ReplicaLagging: it is behind its leader by more than ro_max_lag, its
	// lag is unknown, or it is settling back under the limit.
	ReplicaLagging ReplicaState = "lagging"
	// ReplicaNotStreaming: ro_require_streaming is set and its member key
	// says it is not streaming.
	ReplicaNotStreaming ReplicaState = "not_streaming"
	// ReplicaServing: it serves reads.
	ReplicaServing ReplicaState = "serving"
)

// ReplicaStates lists every replica state, serving first.
var ReplicaStates = []ReplicaState{ReplicaServing, ReplicaLagging, ReplicaNotStreaming, ReplicaNoLoadBalance, ReplicaUnhealthy}

// Exclusion is a replica that serves no reads, and why.
type Exclusion struct {
	Member string       `json:"member"`
	State  ReplicaState `json:"state"`
	// Why says it in a few words: "lag 48 MB > 16 MB", "not streaming (in
	// archive recovery)", "noloadbalance", "critical".
	Why string `json:"why"`
	// UnderLimitSince is, for a replica held out for lag, when it was
	// first seen back under the limit (zero while it is not).
	UnderLimitSince time.Time `json:"under_limit_since,omitzero"`
}

// FollowsReads reports whether a cluster's read names depend on what
// Patroni rewrites every loop_wait (WAL positions, replication state):
// then its member keys must be followed as they change.
func (o Options) FollowsReads() bool { return o.ROMaxLag > 0 || o.RORequireStreaming }

// LagHeld returns the replicas of the named region that d left out for
// lag, each with when it was first seen back under the limit: the
// Region.LagHeld of the next decision of the same cluster.
func (d *Decision) LagHeld(region string) map[string]time.Time {
	var v *RegionView
	switch region {
	case d.Main.Name:
		v = &d.Main
	case d.Standby.Name:
		v = &d.Standby
	default:
		return nil
	}
	var held map[string]time.Time
	for _, e := range v.Excluded {
		if e.State != ReplicaLagging {
			continue
		}
		if held == nil {
			held = map[string]time.Time{}
		}
		held[e.Member] = e.UnderLimitSince
	}
	return held
}

// applyReads leaves out of r's passing replicas those that may not serve
// reads: noloadbalance always, and as o says, those lagging or not
// streaming. It lists them, and the replicas that are not passing, in
// r.view.Excluded, sets r.view.Replicas to those that serve, and returns
// when a replica settling back under the lag limit will have settled
// (zero if none is).
//
// Lag is computed as Patroni's /replica?lag= does: the leader's position
// (the greater of the status key's optime and the leader's member key)
// minus the replica's replayed position; a replica lags when that exceeds
// the limit. A replica whose lag cannot be computed counts as lagging.
//
// Hysteresis: a replica held out for lag by the last decision comes back
// at once when its lag is at most half the limit; otherwise only after it
// has stayed at or under the limit for o.ROLagSettle, measured from the
// first decision that saw it there (Region.LagHeld) to now.
func (r *reading) applyReads(o Options, now time.Time, warningOK bool) (recheck time.Time) {
	reg := r.region
	for _, m := range reg.Members {
		if m.Role == RoleReplica && !passing(m.Health, warningOK) {
			r.view.Excluded = append(r.view.Excluded, Exclusion{Member: m.Member, State: ReplicaUnhealthy, Why: m.Health.String()})
		}
	}
	lead := r.leaderPosition()
	// r.replicas is the reading's own: filtered in place.
	serving := r.replicas[:0]
	for _, m := range r.replicas {
		ex, until := judge(o, reg, m.Member, lead, now)
		if ex.State == ReplicaServing {
			serving = append(serving, m)
			continue
		}
		r.view.Excluded = append(r.view.Excluded, ex)
		if !until.IsZero() && (recheck.IsZero() || until.Before(recheck)) {
			recheck = until
		}
	}
	slices.SortFunc(r.view.Excluded, func(a, b Exclusion) int { return strings.Compare(a.Member, b.Member) })
	if len(serving) == len(r.replicas) {
		return recheck
	}
	r.replicas = serving
	r.view.Replicas = nil
	for _, rep := range serving {
		r.view.Replicas = append(r.view.Replicas, rep.Member)
	}
	return recheck
}

// judge returns the state of the passing replica member and, while it
// settles back under the lag limit, when it will have settled.
func judge(o Options, reg *Region, member string, lead int64, now time.Time) (Exclusion, time.Time) {
	ex := Exclusion{Member: member, State: ReplicaServing}
	key, hasKey := reg.MemberData[member]
	if key.NoLoadBalance {
		ex.State, ex.Why = ReplicaNoLoadBalance, "noloadbalance"
		return ex, time.Time{}
	}
	if o.ROMaxLag > 0 {
		limit := o.ROMaxLag
		pos := key.replayed()
		switch {
		case !hasKey || pos <= 0:
			ex.State, ex.Why = ReplicaLagging, "lag unknown (no WAL position in its member key)"
			return ex, time.Time{}
		case lead <= 0:
			ex.State, ex.Why = ReplicaLagging, "lag unknown (no WAL position of the leader)"
			return ex, time.Time{}
		}
		lag := max(lead-pos, 0)
		since, held := reg.LagHeld[member]
		switch {
		case lag > limit:
			ex.State, ex.Why = ReplicaLagging, "lag "+formatLag(lag, limit, ">")
			return ex, time.Time{}
		case held && lag > limit/2:
			if since.IsZero() || since.After(now) {
				since = now
			}
			if until := since.Add(o.ROLagSettle); now.Before(until) {
				ex.State, ex.UnderLimitSince = ReplicaLagging, since
				ex.Why = "lag " + formatLag(lag, limit, "<=") + ", settling for " + o.ROLagSettle.String()
				return ex, until
			}
		}
	}
	if o.RORequireStreaming && key.ReplicationState != "" && key.ReplicationState != "streaming" {
		ex.State, ex.Why = ReplicaNotStreaming, "not streaming ("+key.ReplicationState+")"
	}
	return ex, time.Time{}
}

// leaderPosition returns the WAL position replicas are measured against:
// the status key's optime or, when newer, the position in the member key
// of the region's leader (a standby leader's, in a standby cluster), or of
// the member the leader key names while no leader passes; 0 when unknown.
func (r *reading) leaderPosition() int64 {
	name := r.region.LeaderKey
	if r.leader != nil {
		name = r.leader.Member
	}
	return max(r.region.Optime, r.region.MemberData[name].XLogLocation)
}

// byteUnits are Patroni's size units, largest first.
var byteUnits = []struct {
	name string
	size int64
}{{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"kB", 1 << 10}}

// formatBytes writes n bytes in Patroni's units, with one decimal where
// the unit does not divide it: "48 MB", "1.5 kB", "512 B".
func formatBytes(n int64) string {
	size, name := unitOf(n)
	if n%size == 0 {
		return strconv.FormatInt(n/size, 10) + " " + name
	}
	return strconv.FormatFloat(float64(n)/float64(size), 'f', 1, 64) + " " + name
}

// unitOf returns the largest of Patroni's units not above n.
func unitOf(n int64) (int64, string) {
	for _, u := range byteUnits {
		if n >= u.size {
			return u.size, u.name
		}
	}
	return 1, "B"
}

// formatLag writes "<lag> <op> <limit>": in Patroni's units, or in bytes
// when lag and limit are too close for one decimal to tell them apart.
func formatLag(lag, limit int64, op string) string {
	size, _ := unitOf(max(lag, limit))
	if d := lag - limit; d != 0 && size > 1 && max(d, -d)*10 < size {
		return strconv.FormatInt(lag, 10) + " B " + op + " " + strconv.FormatInt(limit, 10) + " B"
	}
	return formatBytes(lag) + " " + op + " " + formatBytes(limit)
}
