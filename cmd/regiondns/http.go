package main

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/watch"
)

// newHTTPHandler serves /metrics, /healthz, /readyz and /debug/state.
func newHTTPHandler(e *engine, m *metrics) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		for _, st := range e.watcher.Status() {
			if !st.Ready {
				http.Error(w, "region "+st.Name+" has not been read yet", http.StatusServiceUnavailable)
				return
			}
		}
		w.Write([]byte("ready\n"))
	})
	// Profiles for performance work; like /debug/state, keep the HTTP
	// address off untrusted networks.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /debug/state", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(e.state())
	})
	return mux
}

// state is the JSON document of /debug/state. It holds no token: the
// configuration's token file paths are not part of it either.
type state struct {
	Zone       string               `json:"zone"`
	Config     configState          `json:"config"`
	Generation uint64               `json:"generation"`
	BuiltAt    time.Time            `json:"built_at"`
	Regions    []watch.RegionStatus `json:"regions"`
	Clusters   []clusterState       `json:"clusters"`
}

// configState describes the zone file in use and the last reload.
type configState struct {
	Path            string    `json:"path"`
	LoadedAt        time.Time `json:"loaded_at"`
	LastReloadError string    `json:"last_reload_error,omitempty"`
}

type clusterState struct {
	Label    string                   `json:"label"`
	Layout   policy.Layout            `json:"layout"`
	Scopes   map[string]string        `json:"scopes"`
	Decision policy.Decision          `json:"decision"`
	Observed map[string]observedState `json:"observed"`
}

type observedState struct {
	Known     bool            `json:"known"`
	Stale     bool            `json:"stale"`
	LeaderKey string          `json:"leader_key,omitempty"`
	Members   []instanceState `json:"members"`
	Bouncers  []instanceState `json:"bouncers,omitempty"`
	PoolRW    []instanceState `json:"pool_rw,omitempty"`
	PoolRO    []instanceState `json:"pool_ro,omitempty"`
}

type instanceState struct {
	policy.Instance
	Role     string `json:"role,omitempty"`
	Health   string `json:"health"`
	Timeline int64  `json:"timeline,omitempty"`
}

func (e *engine) state() state {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := state{Zone: e.cfg.Zone, Generation: e.gen, BuiltAt: e.builtAt, Regions: e.watcher.Status(),
		Config: configState{Path: e.path, LoadedAt: e.loadedAt}}
	if e.reloadErr != nil {
		st.Config.LastReloadError = e.reloadErr.Error()
	}
	for i := range e.cfg.Clusters {
		cl := &e.cfg.Clusters[i]
		in := e.inputs[cl.Label]
		cs := clusterState{
			Label: cl.Label, Layout: cl.Layout, Scopes: cl.Scopes, Decision: e.decisions[cl.Label],
			Observed: map[string]observedState{},
		}
		for _, r := range []policy.Region{in.Main, in.Standby} {
			if r.Name == "" {
				continue
			}
			cs.Observed[r.Name] = observedState{
				Known: r.Known, Stale: r.Stale, LeaderKey: r.LeaderKey,
				Members:  instances(r.Members, r.Timelines, true),
				Bouncers: instances(r.Bouncers, nil, false),
				PoolRW:   instances(r.PoolRW, nil, false),
				PoolRO:   instances(r.PoolRO, nil, false),
			}
		}
		st.Clusters = append(st.Clusters, cs)
	}
	return st
}

func instances(in []policy.Instance, timelines map[string]int64, members bool) []instanceState {
	out := make([]instanceState, 0, len(in))
	for _, i := range in {
		s := instanceState{Instance: i, Health: i.Health.String(), Timeline: timelines[i.Member]}
		if members {
			s.Role = i.Role.String()
		}
		out = append(out, s)
	}
	return out
}
