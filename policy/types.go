// Package policy decides, from what both regions report and what the
// operator set (a pin, drains), which endpoints each of a cluster's names
// answers, and which replicas serve no reads and why.
//
// It is a pure function: no I/O, no clock, no logging. Two callers that pass
// the same observations get the same decision, whenever they run.
package policy

import (
	"net/netip"
	"strings"
	"time"
)

// Layout says what an endpoint is: the Patroni member itself, the PgBouncer on
// the member's Consul node, or a region-wide PgBouncer pool.
type Layout string

// The layouts a cluster can have.
const (
	LayoutDirect         Layout = "direct"
	LayoutBouncerPerNode Layout = "bouncer-per-node"
	LayoutPoolFleet      Layout = "pool-fleet"
)

// Layouts lists every valid layout, in the order documentation shows them.
var Layouts = []Layout{LayoutDirect, LayoutBouncerPerNode, LayoutPoolFleet}

// ROFallback says what the ro name answers when the active region has no
// passing replica.
type ROFallback string

// The ro fallbacks.
const (
	// FallbackLeader answers ro with the active region's leader.
	FallbackLeader ROFallback = "leader"
	// FallbackNone answers ro with no records (NODATA).
	FallbackNone ROFallback = "none"
)

// Role is what Patroni says a member is, read from its Consul service tags.
type Role uint8

// The roles a member can have.
const (
	RoleUnknown Role = iota
	RoleReplica
	RoleStandbyLeader
	RoleLeader
)

// String returns the role's name as the state endpoint and TXT records show it.
func (r Role) String() string {
	switch r {
	case RoleReplica:
		return "replica"
	case RoleStandbyLeader:
		return "standby-leader"
	case RoleLeader:
		return "leader"
	default:
		return "unknown"
	}
}

// RoleTags are the Consul service tags that mark each role. Patroni writes
// "master" and "primary" for a leader (2.x only "master"), "replica" for a
// replica and "standby-leader" for the leader of a standby cluster.
type RoleTags struct {
	Leader        []string `json:"leader"`
	Replica       []string `json:"replica"`
	StandbyLeader []string `json:"standby_leader"`
}

// DefaultRoleTags returns Patroni's own tags.
func DefaultRoleTags() RoleTags {
	return RoleTags{
		Leader:        []string{"primary", "master"},
		Replica:       []string{"replica"},
		StandbyLeader: []string{"standby-leader"},
	}
}

// Classify returns the role that tags mark. A leader tag wins over a standby
// leader tag, which wins over a replica tag: Patroni re-registers a member
// with a new tag set on promotion, and a transient mix must not demote it.
func (t RoleTags) Classify(tags []string) Role {
	role := RoleUnknown
	for _, tag := range tags {
		switch {
		case containsFold(t.Leader, tag):
			return RoleLeader
		case containsFold(t.StandbyLeader, tag):
			role = RoleStandbyLeader
		case containsFold(t.Replica, tag) && role == RoleUnknown:
			role = RoleReplica
		}
	}
	return role
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// Health is the aggregated Consul health of a service instance: the worst of
// its checks, node checks included.
type Health uint8

// The health states Consul reports, best first.
const (
	HealthPassing Health = iota
	HealthWarning
	HealthCritical
)

// String returns Consul's name for the health state.
func (h Health) String() string {
	switch h {
	case HealthPassing:
		return "passing"
	case HealthWarning:
		return "warning"
	default:
		return "critical"
	}
}

// Instance is one Consul service instance: a Patroni member or a PgBouncer.
type Instance struct {
	// ID is the Consul service ID (Patroni: "<scope>/<member>").
	ID string `json:"id"`
	// Member is the Patroni member name; empty for PgBouncer instances.
	Member string `json:"member,omitempty"`
	// Node is the Consul node the instance is registered on.
	Node string `json:"node"`
	// Address and Port are where clients connect.
	Address netip.Addr `json:"address"`
	Port    uint16     `json:"port"`
	// Tags are the instance's Consul service tags.
	Tags []string `json:"tags,omitempty"`
	// Role is the Patroni role the tags mark (members only).
	Role Role `json:"-"`
	// Health is the worst of the instance's checks.
	Health Health `json:"-"`
	// CheckRole is the role Patroni's check of the instance tests (its
	// REST API endpoint: /primary, /replica, /standby-leader), RoleUnknown
	// when it has none; OtherHealth is the worst of its other checks, the
	// node's included (Health when it has no role check). Patroni
	// re-registers a member's check for its new role right after a
	// promotion, and Consul keeps the old check's status until the new one
	// runs, an interval later.
	CheckRole   Role   `json:"-"`
	OtherHealth Health `json:"-"`
}

// Region is what one region's Consul datacenter reports about one cluster.
type Region struct {
	// Name is the configured region name.
	Name string
	// Known is false until the region has been read once.
	Known bool
	// Stale is true while the region's Consul cannot be reached and the data
	// is the last known.
	Stale bool
	// Members are the instances of the cluster's Patroni service.
	Members []Instance
	// Bouncers are the PgBouncer instances of the bouncer-per-node layout.
	Bouncers []Instance
	// PoolRW and PoolRO are the pool-fleet layout's PgBouncer instances.
	PoolRW, PoolRO []Instance
	// LeaderKey is the member named by Patroni's leader key, if any.
	LeaderKey string
	// Timelines maps member names to the timeline in their members/ key.
	Timelines map[string]int64
	// Config is what Patroni's config key says: a standby cluster or not.
	Config ClusterConfig
	// MemberKeys are the members with a members/ key. Patroni writes it with
	// its session, so it exists exactly while that member's Patroni runs,
	// whatever its health check says in the middle of a role change.
	MemberKeys []string
	// MemberData is what each member key says about the member's reads,
	// by member name: WAL positions, replication state, tags.
	MemberData map[string]MemberKey
	// Optime is the WAL position Patroni's status key records for the
	// leader (optime; the optime/leader key of older setups); 0 when
	// unknown.
	Optime int64
	// SyncMode is true when Patroni's config key sets synchronous_mode
	// (true as Patroni parses it, or quorum).
	SyncMode bool
	// Sync is Patroni's sync key.
	Sync SyncKey
	// LagHeld are the replicas the previous decision left out of the
	// region's read names for lag, each with when it was first seen back
	// under the limit (zero: it was not). Whoever calls Decide again
	// carries them over from that decision (Decision.LagHeld), with Now.
	LagHeld map[string]time.Time
	// LeaderKeyRead is true once Patroni's leader key has been read: then
	// LeaderKey is the lock as it is (empty: nobody holds it), and the lock
	// decides who leads the region (see lock.go). False when the key could
	// never be read: leaders come from their tags alone, as before.
	LeaderKeyRead bool
	// KeyRoles maps member names to the role their members/ key says
	// (Patroni's "role": master or primary, replica, standby_leader).
	// Patroni writes it as soon as a role change is done, before its
	// service's tags and check follow.
	KeyRoles map[string]Role
	// Index is the Consul index of the data the region was read from: it
	// only grows, and grows whenever what the policy reads changes. Decide
	// does not read it; it carries it into RegionView, from which the
	// cluster zone's SOA serial is made.
	Index uint64
}

// ClusterConfig is what Patroni's dynamic configuration (the config key)
// says about a cluster. Promoting a standby cluster is removing
// standby_cluster from it, so this is the promotion itself, seen before the
// new leader is.
type ClusterConfig uint8

// The configurations a cluster can report.
const (
	// ConfigUnknown: no config key was read.
	ConfigUnknown ClusterConfig = iota
	// ConfigStandby: the config holds standby_cluster.
	ConfigStandby
	// ConfigPrimary: the config has no standby_cluster.
	ConfigPrimary
)

// Options are the per-cluster settings the policy applies.
type Options struct {
	Layout           Layout
	ROFallback       ROFallback
	WarningIsPassing bool
	// ROMaxLag is how far, in bytes, a replica's replayed WAL position may
	// trail its leader's for it to serve reads; 0: no limit.
	ROMaxLag int64
	// RORequireStreaming leaves out of the read names the replicas whose
	// member key says they are not streaming.
	RORequireStreaming bool
	// ROLagSettle is how long a replica left out for lag must stay under
	// the limit before it serves reads again, unless it is under half of it.
	ROLagSettle time.Duration
}

// Input is everything a decision depends on.
type Input struct {
	Options
	Main, Standby Region
	// Control is the operator's pin and drains of the cluster, with the
	// time of the read that delivered them (see control.go).
	Control Control
	// Now is when the decision is made: the settle time of a replica held
	// out for lag (Region.LagHeld) is measured against it.
	Now time.Time
}

// State is a region's state for one cluster.
type State string

// The region states.
const (
	// StatePrimary: exactly one passing member tagged as leader.
	StatePrimary State = "primary"
	// StateStandby: no passing leader, a passing standby leader.
	StateStandby State = "standby"
	// StateNone: neither.
	StateNone State = "none"
	// StateConflict: two or more passing leaders; the leader key picks one.
	StateConflict State = "conflict"
	// StateUnknown: the region has never been read.
	StateUnknown State = "unknown"
)

// Endpoint is one answer: an address and port, and the DNS label of the SRV
// target that resolves to it.
type Endpoint struct {
	// Target is the DNS label naming the endpoint under its region and cluster.
	Target string `json:"target"`
	// Region is the region the endpoint belongs to.
	Region string `json:"region"`
	// Member is the Patroni member behind the endpoint, if any.
	Member  string     `json:"member,omitempty"`
	Node    string     `json:"node"`
	Address netip.Addr `json:"address"`
	Port    uint16     `json:"port"`
}

// RegionView is the policy's reading of one region.
type RegionView struct {
	Name  string `json:"name"`
	State State  `json:"state"`
	Stale bool   `json:"stale"`
	// Leader is the leader (or standby leader) the region answers with, if any.
	Leader string `json:"leader,omitempty"`
	// Timeline is the leader's Patroni timeline, 0 if unknown.
	Timeline int64 `json:"timeline,omitempty"`
	// Replicas are the member names of the replicas that serve reads:
	// passing, and not left out (see Excluded).
	Replicas []string `json:"replicas,omitempty"`
	// Promoted is true for a standby region whose Patroni config no longer
	// holds standby_cluster while it has passing members.
	Promoted bool `json:"promoted,omitempty"`
	// RO are the endpoints of the region-pinned read name
	// ro.<region>.<cluster>: the region's serving replicas, else its leader.
	RO []Endpoint `json:"ro"`
	// Excluded are the region's replicas that serve no reads, and why.
	Excluded []Exclusion `json:"excluded,omitempty"`
	// Index is the region's Region.Index.
	Index uint64 `json:"index,omitempty"`
}

// Decision is what the four names of a cluster answer, and why.
type Decision struct {
	// Active is the region rw and ro answer from; Passive is the other one.
	Active  string `json:"active"`
	Passive string `json:"passive"`
	// Main and Standby are the readings of the two regions.
	Main    RegionView `json:"main"`
	Standby RegionView `json:"standby"`
	// SplitBrain is true when both regions have a leader.
	SplitBrain bool `json:"split_brain"`
	// Stale is true when a region whose data was used is stale.
	Stale bool `json:"stale"`
	// Reason says, in one line, why the active region is the active one.
	Reason string `json:"reason"`
	// The endpoints of each name, sorted.
	RW        []Endpoint `json:"rw"`
	RO        []Endpoint `json:"ro"`
	PassiveRW []Endpoint `json:"passive_rw"`
	PassiveRO []Endpoint `json:"passive_ro"`
	// Pin is what became of the cluster's pin (applied, or ignored and
	// why); nil without a pin key.
	Pin *PinState `json:"pin,omitempty"`
	// Drained are the drained members left out of the read names: passing
	// replicas of either region. DrainNotApplied are the drained members
	// still answered because they lead a region: draining a leader is a
	// switchover, Patroni's job.
	Drained         []string `json:"drained,omitempty"`
	DrainNotApplied []string `json:"drain_not_applied,omitempty"`
	// Sync are the endpoints of sync.<cluster>: the active region's
	// serving synchronous standbys, else its leader; SyncReason says which
	// and why.
	Sync       []Endpoint `json:"sync"`
	SyncReason string     `json:"sync_reason"`
	// Recheck, when not zero, is when the decision changes without new
	// input: a replica held out for lag has then settled.
	Recheck time.Time `json:"recheck,omitzero"`
}
