package engine

import (
	"time"

	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/watch"
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
	// LeaderKeyRead says that Patroni's lock decides who leads (see
	// policy/lock.go): the leader key was read, in a KV prefix that holds
	// Patroni's keys.
	LeaderKeyRead bool `json:"leader_key_read,omitempty"`
}

// InstanceState is one registered instance, with its health in words
// and, for a Patroni member, its role and its timeline (0 when unknown).
type InstanceState struct {
	policy.Instance
	Role     string `json:"role,omitempty"`
	Health   string `json:"health"`
	Timeline int64  `json:"timeline,omitempty"`
	// KeyRole is the role the member's members/ key says, when it has
	// one Patroni wrote a role in.
	KeyRole string `json:"key_role,omitempty"`
}

// State returns what the engine knows now.
func (e *Engine) State() State {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := State{Zone: e.cfg.Zone, Generation: e.gen, BuiltAt: e.builtAt, Regions: e.watcher.Status(),
		Config: ConfigState{Path: e.path, LoadedAt: e.loadedAt}}
	if e.reloadErr != nil {
		st.Config.LastReloadError = e.reloadErr.Error()
	}
	for i := range e.cfg.Clusters {
		cl := &e.cfg.Clusters[i]
		in := e.inputs[cl.Label]
		cs := ClusterState{
			Label: cl.Label, Layout: cl.Layout, Scopes: cl.Scopes, Decision: e.decisions[cl.Label],
			Observed: map[string]ObservedState{},
		}
		for _, r := range []policy.Region{in.Main, in.Standby} {
			if r.Name == "" {
				continue
			}
			obs := ObservedState{
				Known: r.Known, Stale: r.Stale, LeaderKey: r.LeaderKey,
				Members:  instances(r.Members, r.Timelines, true),
				Bouncers: instances(r.Bouncers, nil, false),
				PoolRW:   instances(r.PoolRW, nil, false),
				PoolRO:   instances(r.PoolRO, nil, false),
			}
			obs.LeaderKeyRead = r.LeaderKeyRead
			for j := range obs.Members {
				if kr, ok := r.KeyRoles[obs.Members[j].Member]; ok {
					obs.Members[j].KeyRole = kr.String()
				}
			}
			cs.Observed[r.Name] = obs
		}
		st.Clusters = append(st.Clusters, cs)
	}
	return st
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
		}
		out = append(out, s)
	}
	return out
}
