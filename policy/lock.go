package policy

// Patroni's lock.
//
// Patroni's leader key (session-bound: the DCS lock that decides who may
// write) and the winner's members/ key (role master or primary, written as
// soon as the promotion is done) say who leads a region before anything
// else does: the service's tags and its HTTP check follow, seconds later.
// Once the leader key has been read (Region.LeaderKeyRead), it decides:
//
//   - the member it names leads (or, in a standby cluster, is the standby
//     leader) as soon as its members/ key says so and neither its node's
//     nor its service's health is critical, whatever its tags say yet. A
//     critical check of Patroni's endpoint for another role (/replica on a
//     member that was just promoted) does not count: Patroni registers the
//     check of the new role right after the promotion, and Consul keeps the
//     old check's status until the new check runs, an interval later;
//   - a member tagged as a leader (or standby leader) that the key does not
//     name, the key being gone (expired with its session, or deleted) or
//     naming another member, leads nothing, whatever its tags still say:
//     its PostgreSQL may already refuse writes, or another member's may
//     take them;
//   - a member the key names whose members/ key does not say it leads yet
//     (not yet promoted) leads only once its tags say so and it passes,
//     as without the lock.
//
// Replicas are read from their tags and health as always. A region whose
// leader key has never been read keeps the rules of the tags alone.

// memberRole returns the role member m of region r counts with, and
// whether it counts at all, by its tags and health and, once r's leader key
// has been read, by Patroni's lock.
func memberRole(r *Region, m *Instance, warningOK bool) (Role, bool) {
	tagged := passing(m.Health, warningOK)
	if !r.LeaderKeyRead {
		return m.Role, tagged
	}
	if r.LeaderKey == "" || m.Member != r.LeaderKey {
		if leads(m.Role) {
			return m.Role, false
		}
		return m.Role, tagged
	}
	// The lock holder: the higher of what its tags say (when it passes)
	// and what its members/ key says (when it is not critical). Patroni
	// re-registers the service before it rewrites the members/ key, so
	// either can be ahead of the other for a moment.
	role, counts := RoleUnknown, false
	if tagged {
		role, counts = m.Role, true
	}
	if kr := r.KeyRoles[m.Member]; leads(kr) && kr > role && lockHealth(m, kr) != HealthCritical {
		role, counts = kr, true
	}
	return role, counts
}

// lockHealth returns the health of m as the leader (role) its members/ key
// says it is: without a check of Patroni's endpoint for another role, which
// tests what m was before (see the rules above).
func lockHealth(m *Instance, role Role) Health {
	if m.CheckRole != RoleUnknown && m.CheckRole != role {
		return m.OtherHealth
	}
	return m.Health
}

// leads reports whether a role is a leader's: read-write or standby.
func leads(r Role) bool { return r == RoleLeader || r == RoleStandbyLeader }

// KeyRole returns the role the "role" field of Patroni's members/ key
// names: "master" (Patroni 3.0 and before) or "primary" (3.1 and after) for
// the read-write leader, "standby_leader" for the leader of a standby
// cluster, "replica" for a replica; anything else is RoleUnknown.
func KeyRole(role string) Role {
	switch role {
	case "master", "primary":
		return RoleLeader
	case "standby_leader", "standby-leader":
		return RoleStandbyLeader
	case "replica":
		return RoleReplica
	}
	return RoleUnknown
}
