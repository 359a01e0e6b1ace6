package engine

import "github.com/regiondns/regiondns/policy"

// configNames are the names ObservedState.Config gives each
// policy.ClusterConfig.
var configNames = map[policy.ClusterConfig]string{
	policy.ConfigUnknown: "", policy.ConfigStandby: "standby", policy.ConfigPrimary: "primary",
}

// Input returns the policy input the cluster's state was made from, with
// opts (the cluster's options, from the zone file) and the regions in the
// order main, standby, as /debug/state carries it: regiondns ctl decides
// on it again, with a new pin or drain, to say what the answers will
// become. Every field of policy.Region and policy.Control that a decision
// reads must travel through ClusterState; TestStateCarriesTheInput keeps
// it so.
func (cs *ClusterState) Input(opts policy.Options, main, standby string) policy.Input {
	return policy.Input{Options: opts, Main: cs.region(main), Standby: cs.region(standby), Control: cs.Control}
}

// region reads back the input of one region.
func (cs *ClusterState) region(name string) policy.Region {
	o, ok := cs.Observed[name]
	if !ok {
		return policy.Region{Name: name}
	}
	r := policy.Region{
		Name: name, Known: o.Known, Stale: o.Stale, LeaderKey: o.LeaderKey,
		Members: instancesBack(o.Members), Bouncers: instancesBack(o.Bouncers),
		PoolRW: instancesBack(o.PoolRW), PoolRO: instancesBack(o.PoolRO),
		Timelines: o.Timelines, MemberKeys: o.MemberKeys,
		Optime: o.Optime, SyncMode: o.SynchronousMode, LagHeld: o.LagHeld,
		LeaderKeyRead: o.LeaderKeyRead, Index: o.Index,
	}
	if len(o.KeyRoles) > 0 {
		r.KeyRoles = make(map[string]policy.Role, len(o.KeyRoles))
		for m, kr := range o.KeyRoles {
			r.KeyRoles[m] = roleNamed(kr)
		}
	}
	if o.Sync != nil {
		r.Sync = *o.Sync
	}
	for _, m := range o.Members {
		if m.MemberKey != nil {
			if r.MemberData == nil {
				r.MemberData = map[string]policy.MemberKey{}
			}
			r.MemberData[m.Member] = *m.MemberKey
		}
	}
	for c, n := range configNames {
		if n == o.Config {
			r.Config = c
		}
	}
	return r
}

// instancesBack reads back instances(): the role and health from their
// names.
func instancesBack(in []InstanceState) []policy.Instance {
	if in == nil {
		return nil
	}
	out := make([]policy.Instance, len(in))
	for i, s := range in {
		out[i] = s.Instance
		out[i].Role, out[i].Health = roleNamed(s.Role), healthNamed(s.Health)
		out[i].CheckRole = roleNamed(s.CheckRole)
		if s.OtherHealth != "" {
			out[i].OtherHealth = healthNamed(s.OtherHealth)
		}
	}
	return out
}

func roleNamed(name string) policy.Role {
	for _, r := range []policy.Role{policy.RoleReplica, policy.RoleStandbyLeader, policy.RoleLeader} {
		if r.String() == name {
			return r
		}
	}
	return policy.RoleUnknown
}

func healthNamed(name string) policy.Health {
	for _, h := range []policy.Health{policy.HealthPassing, policy.HealthWarning} {
		if h.String() == name {
			return h
		}
	}
	return policy.HealthCritical
}
