package engine

import (
	"time"

	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/watch"
	"github.com/regiondns/regiondns/zones"
)

// State is what the engine knows, taken at once under its lock: the zone
// file in use, the snapshot being served, each region's Consul status and
// each cluster's observed input and decision. It marshals to the JSON
// document that regiondns serves at /debug/state, for operators. It holds
// no token, nor the paths of the configuration's token files.
type State struct {
	// Zone is the zone's apex, as configured.
	Zone   string      `json:"zone"`
	Config ConfigState `json:"config"`
	// Generation is the snapshot's generation (its SOA serial), one more
	// per rebuild; BuiltAt is when it was built.
	Generation uint64               `json:"generation"`
	BuiltAt    time.Time            `json:"built_at"`
	Regions    []watch.RegionStatus `json:"regions"`
	// Clusters are the configured clusters, in configuration order.
	Clusters []ClusterState `json:"clusters"`
	// Control is how the operator's control keys are read.
	Control watch.ControlStatus `json:"control"`
	// LatestChangeID is the ID of the newest decision change of any
	// cluster (0 before the first): /debug/history?since= takes it.
	LatestChangeID uint64 `json:"latest_change_id"`
}

// ConfigState describes the zone file in use and the last reload.
type ConfigState struct {
	Path     string    `json:"path"`
	LoadedAt time.Time `json:"loaded_at"`
	// LastReloadError is why the last reload failed; empty if it
	// succeeded, or if there was none.
	LastReloadError string `json:"last_reload_error,omitempty"`
}

// ClusterState is one cluster: its configuration, its decision and what
// was observed of it in each region, by region name.
type ClusterState struct {
	Label    string                   `json:"label"`
	Layout   policy.Layout            `json:"layout"`
	Scopes   map[string]string        `json:"scopes"`
	Decision policy.Decision          `json:"decision"`
	Observed map[string]ObservedState `json:"observed"`
	// Control is the operator's pin and drains of the cluster, as the
	// decision read them.
	Control policy.Control `json:"control"`
	// History is the cluster's last decision changes, oldest first.
	History []Change `json:"history"`
}

// ObservedState is what a cluster's last input held of one region.
type ObservedState struct {
	Known     bool            `json:"known"`
	Stale     bool            `json:"stale"`
	LeaderKey string          `json:"leader_key,omitempty"`
	Members   []InstanceState `json:"members"`
	Bouncers  []InstanceState `json:"bouncers,omitempty"`
	PoolRW    []InstanceState `json:"pool_rw,omitempty"`
	PoolRO    []InstanceState `json:"pool_ro,omitempty"`
	// Config is what Patroni's config key says: "standby" (it holds
	// standby_cluster), "primary", or "" (not read).
	Config string `json:"config,omitempty"`
	// MemberKeys are the members with a member key (a running Patroni),
	// and Timelines the timeline in each member key.
	MemberKeys []string         `json:"member_keys,omitempty"`
	Timelines  map[string]int64 `json:"timelines,omitempty"`
	// Optime is the status key's WAL position of the leader (read for
	// clusters that follow reads); SynchronousMode and Sync are what
	// Patroni's config and sync keys say.
	Optime int64 `json:"optime,omitempty"`
	// LagHeld are the replicas held out for lag, and since when they have
	// been back under the limit (policy.Region.LagHeld).
	LagHeld         map[string]time.Time `json:"lag_held,omitempty"`
	SynchronousMode bool                 `json:"synchronous_mode,omitempty"`
	Sync            *policy.SyncKey      `json:"sync,omitempty"`
	// LeaderKeyRead says that Patroni's lock decides who leads (see
	// policy/lock.go): the leader key was read, in a KV prefix that holds
	// Patroni's keys.
	LeaderKeyRead bool `json:"leader_key_read,omitempty"`
	// KeyRoles is the role each members/ key says (policy.Region.KeyRoles),
	// also shown on each member as KeyRole.
	KeyRoles map[string]string `json:"key_roles,omitempty"`
	// Index is the Consul index of the data the region was read from
	// (policy.Region.Index), from which the cluster zone's serial is made.
	Index uint64 `json:"index,omitempty"`
}

// InstanceState is one registered instance, with its health in words
// and, for a Patroni member, its role and its timeline (0 when unknown).
type InstanceState struct {
	policy.Instance
	Role     string `json:"role,omitempty"`
	Health   string `json:"health"`
	Timeline int64  `json:"timeline,omitempty"`
	// MemberKey is what the member's key says of its reads (positions and
	// replication state for clusters that follow reads, tags), if
	// anything.
	MemberKey *policy.MemberKey `json:"member_key,omitempty"`
	// KeyRole is the role the member's members/ key says, when it has
	// one Patroni wrote a role in.
	KeyRole string `json:"key_role,omitempty"`
	// CheckRole is the role Patroni's role check of the instance tests,
	// and OtherHealth the worst of its other checks ("" when passing).
	CheckRole   string `json:"check_role,omitempty"`
	OtherHealth string `json:"other_health,omitempty"`
}

// State returns what the engine knows now.
func (e *Engine) State() State {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := State{Zone: e.cfg.Zone, Generation: e.gen, BuiltAt: e.builtAt, Regions: e.watcher.Status(),
		Config: ConfigState{Path: e.path, LoadedAt: e.loadedAt}, Control: e.watcher.ControlStatus(),
		LatestChangeID: e.lastChange}
	if e.reloadErr != nil {
		st.Config.LastReloadError = e.reloadErr.Error()
	}
	for i := range e.cfg.Clusters {
		cl := &e.cfg.Clusters[i]
		in := e.inputs[cl.Label]
		cs := clusterState(cl, in, e.decisions[cl.Label])
		cs.History = append([]Change{}, e.history[cl.Label]...)
		st.Clusters = append(st.Clusters, cs)
	}
	return st
}

// clusterState returns the state of cluster cl from its input and
// decision; ClusterState.Input reads the input back.
func clusterState(cl *zones.Cluster, in policy.Input, d policy.Decision) ClusterState {
	cs := ClusterState{
		Label: cl.Label, Layout: cl.Layout, Scopes: cl.Scopes, Decision: d,
		Observed: map[string]ObservedState{}, Control: in.Control,
	}
	for _, r := range []policy.Region{in.Main, in.Standby} {
		if r.Name == "" {
			continue
		}
		obs := ObservedState{
			Known: r.Known, Stale: r.Stale, LeaderKey: r.LeaderKey,
			Members:    instances(r.Members, r.Timelines, true),
			Bouncers:   instances(r.Bouncers, nil, false),
			PoolRW:     instances(r.PoolRW, nil, false),
			PoolRO:     instances(r.PoolRO, nil, false),
			Config:     configNames[r.Config],
			MemberKeys: r.MemberKeys,
			Timelines:  r.Timelines,
			Optime:     r.Optime, SynchronousMode: r.SyncMode, LagHeld: r.LagHeld,
		}
		obs.LeaderKeyRead, obs.Index = r.LeaderKeyRead, r.Index
		if len(r.KeyRoles) > 0 {
			obs.KeyRoles = make(map[string]string, len(r.KeyRoles))
			for m, kr := range r.KeyRoles {
				obs.KeyRoles[m] = kr.String()
			}
		}
		for i := range obs.Members {
			if k, ok := r.MemberData[obs.Members[i].Member]; ok {
				obs.Members[i].MemberKey = &k
			}
			if kr, ok := r.KeyRoles[obs.Members[i].Member]; ok {
				obs.Members[i].KeyRole = kr.String()
			}
		}
		if r.Sync.Leader != "" || len(r.Sync.Standbys) > 0 || r.Sync.Quorum != 0 {
			sync := r.Sync
			obs.Sync = &sync
		}
		cs.Observed[r.Name] = obs
	}
	return cs
}

// Regions returns each region's Consul status, in configuration order;
// it does not take the engine's lock.
func (e *Engine) Regions() []watch.RegionStatus {
	return e.watcher.Status()
}

func instances(in []policy.Instance, timelines map[string]int64, members bool) []InstanceState {
	out := make([]InstanceState, 0, len(in))
	for _, i := range in {
		s := InstanceState{Instance: i, Health: i.Health.String(), Timeline: timelines[i.Member]}
		if members {
			s.Role = i.Role.String()
			if i.CheckRole != policy.RoleUnknown {
				s.CheckRole = i.CheckRole.String()
			}
		}
		if i.OtherHealth != policy.HealthPassing {
			s.OtherHealth = i.OtherHealth.String()
		}
		out = append(out, s)
	}
	return out
}
