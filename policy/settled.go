package policy

// Settled reports whether region r of a cluster looks at rest, so that
// whoever watches its Patroni KV prefix may stop following it: exactly one
// passing leader (a primary or a standby leader), which holds the leader key
// and whose role agrees with the cluster's config (an unknown config agrees
// with either), and, when that leader is a primary, no known region among
// others with a passing primary. Anything else (no leader, two, a leader key
// naming another member, a standby config with a primary or the other way
// round, a split brain) is a region in the middle of a change, whose KV
// (timelines, config, leader key) Decide may need the moment it changes.
//
// Passing is Decide's own rule: a warning counts when o.WarningIsPassing is
// set. Of r only Members, LeaderKey and Config are read; of others only
// Known and Members.
func Settled(o Options, r *Region, others []Region) bool {
	var leader *Instance
	for i := range r.Members {
		m := &r.Members[i]
		if !passing(m.Health, o.WarningIsPassing) || (m.Role != RoleLeader && m.Role != RoleStandbyLeader) {
			continue
		}
		if leader != nil {
			return false
		}
		leader = m
	}
	if leader == nil || r.LeaderKey != leader.Member {
		return false
	}
	switch r.Config {
	case ConfigStandby:
		if leader.Role != RoleStandbyLeader {
			return false
		}
	case ConfigPrimary:
		if leader.Role != RoleLeader {
			return false
		}
	}
	if leader.Role != RoleLeader {
		return true
	}
	for i := range others {
		if others[i].Known && hasPassingPrimary(others[i].Members, o.WarningIsPassing) {
			return false
		}
	}
	return true
}

// hasPassingPrimary reports whether a passing member is a primary.
func hasPassingPrimary(members []Instance, warningOK bool) bool {
	for i := range members {
		if members[i].Role == RoleLeader && passing(members[i].Health, warningOK) {
			return true
		}
	}
	return false
}
