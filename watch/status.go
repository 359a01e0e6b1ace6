package watch

import (
	"sort"
	"sync"
	"time"
)

// RegionStatus is how reading one region's Consul goes.
type RegionStatus struct {
	Name string `json:"name"`
	// Ready is true once every resource of the region was read once, or
	// failed its first read.
	Ready bool `json:"ready"`
	// Stale is true while any resource of the region cannot be read.
	Stale bool `json:"stale"`
	// Index is the highest Consul index seen across the region's resources.
	Index uint64 `json:"index"`
	// LastContact is the last time any resource was read successfully.
	LastContact time.Time `json:"last_contact"`
	// LastError is the newest read error while the region is stale,
	// redacted and cut to MaxErrorText bytes.
	LastError string `json:"last_error,omitempty"`
	// TokenFileWarning says why the region's token file is unsafe: it is
	// readable or writable by group or others, as ssh warns of a key file.
	TokenFileWarning string `json:"token_file_warning,omitempty"`
	// Via lists the agents the region's followed resources were last read
	// through ("addr?dc=x" when through the other region's agents); a KV
	// prefix read now and then (see Following) is not counted.
	Via []string `json:"via,omitempty"`
	// Resources and Failing count the watched resources and those failing.
	Resources int `json:"resources"`
	Failing   int `json:"failing"`
	// Following counts the resources whose loop runs: every service, the
	// control prefix, each KV prefix while it is followed, and any
	// resource that is failing.
	// Each holds one blocking query (or backs off); the others are idle.
	Following int `json:"following"`
	// Requests and Errors count HTTP requests to Consul for this region, and
	// the failed ones, since the process started.
	Requests uint64 `json:"requests"`
	Errors   uint64 `json:"errors"`
}

// Status returns the status of each region, in configuration order.
func (w *Watcher) Status() []RegionStatus {
	w.mu.RLock()
	defer w.mu.RUnlock()
	byName := map[string]*RegionStatus{}
	out := make([]RegionStatus, len(w.cfg.Regions))
	for i, r := range w.cfg.Regions {
		out[i] = RegionStatus{Name: r.Name, Ready: true, TokenFileWarning: w.tokenWarnings[r.Name]}
		byName[r.Name] = &out[i]
	}
	vias := map[string]map[string]bool{}
	for key, r := range w.resources {
		st := byName[key.region]
		r.mu.Lock()
		if key.kind == kindSync && !r.running {
			// Read with its prefix: watched on its own only while it runs.
			r.mu.Unlock()
			continue
		}
		st.Resources++
		if r.running {
			st.Following++
		}
		st.Ready = st.Ready && r.attempted
		st.Index = max(st.Index, r.index)
		if r.lastContact.After(st.LastContact) {
			st.LastContact = r.lastContact
		}
		if r.failing {
			st.Stale = true
			st.Failing++
			if r.lastErr != "" {
				st.LastError = r.lastErr
			}
		} else if r.via != "" && r.running {
			if vias[key.region] == nil {
				vias[key.region] = map[string]bool{}
			}
			vias[key.region][r.via] = true
		}
		r.mu.Unlock()
	}
	w.countersMu.Lock()
	for i := range out {
		if c := w.counters[out[i].Name]; c != nil {
			out[i].Requests, out[i].Errors = c.requests.Load(), c.errors.Load()
		}
	}
	w.countersMu.Unlock()
	for i := range out {
		for v := range vias[out[i].Name] {
			out[i].Via = append(out[i].Via, v)
		}
		sort.Strings(out[i].Via)
	}
	return out
}

// Ready reports whether every region has been read once or has failed its
// first read.
func (w *Watcher) Ready() bool {
	for _, st := range w.Status() {
		if !st.Ready {
			return false
		}
	}
	return true
}

// rateLimiter lets one event per key through per interval, so that a Consul
// outage does not flood the log.
type rateLimiter struct {
	every time.Duration
	mu    sync.Mutex
	// last is when each key last passed; guarded by mu.
	last map[string]time.Time
}

func newRateLimiter(every time.Duration) *rateLimiter {
	return &rateLimiter{every: every, last: map[string]time.Time{}}
}

func (l *rateLimiter) allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if t, ok := l.last[key]; ok && now.Sub(t) < l.every {
		return false
	}
	l.last[key] = now
	return true
}

// Resources returns how many Consul resources the Watcher watches, in
// every region: each may hold a connection to its agent at a time.
func (w *Watcher) Resources() int {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return len(w.resources)
}
