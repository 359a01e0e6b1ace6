package watch

import (
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/zones"
)

// The operator's control keys: under the zone file's control prefix,
// pin/<cluster label> and drain/<cluster label>/<member>. Each region's
// prefix is followed with one recursive blocking query, whatever the number
// of clusters; the main region's keys apply while they can be read, the
// standby region's otherwise (Consul KV is per datacenter, so regiondns
// ctl writes both).

// PinKey returns the KV key of cluster label's pin under prefix.
func PinKey(prefix, label string) string { return prefix + "/pin/" + label }

// DrainKey returns the KV key that drains member of cluster label under
// prefix.
func DrainKey(prefix, label, member string) string {
	return prefix + "/drain/" + label + "/" + member
}

// maxUnknownKeys bounds the unknown keys ControlStatus lists; it counts
// them all.
const maxUnknownKeys = 50

// expiryMargin is how far past a pin's expiry the blocking query on the
// control prefix is asked to wait at most: Consul answers a blocking query
// no earlier than its wait (it adds up to wait/16), and rounds the wait
// down to the millisecond.
const expiryMargin = 50 * time.Millisecond

// minControlWait is the shortest wait asked of that query: a wait of 0
// would be Consul's default of 5 minutes.
const minControlWait = 10 * time.Millisecond

// controlState is what one read of a region's control prefix delivered.
type controlState struct {
	// clusters holds each cluster label's pin and drains, drains sorted by
	// member; ReadAt, Source and Stale are set when an input is assembled.
	clusters map[string]policy.Control
	// badKeys are the keys under the prefix that are neither
	// pin/<label> nor drain/<label>/<member>.
	badKeys []string
	// readAt is when the read answered; after a failed read, when it
	// failed (see setFailed).
	readAt time.Time
	// index holds, by cluster label, the highest ModifyIndex of the
	// cluster's keys: part of the Consul index of the data behind its
	// answers (policy.Region.Index), taken from the keys themselves so
	// that two instances reading the same keys agree.
	index map[string]uint64
}

// controlKey returns the resource key of region's control prefix in cfg.
func controlKey(cfg *zones.Config, region string) resourceKey {
	return resourceKey{region: region, kind: kindControl, name: cfg.ControlKeyPrefix() + "/"}
}

// convertControl reads the keys under prefix ("<control_prefix>/"). Folder
// keys (ending in /, as Consul's UI makes them) are skipped.
func convertControl(prefix string, pairs api.KVPairs, readAt time.Time) controlState {
	st := controlState{clusters: map[string]policy.Control{}, readAt: readAt}
	for _, p := range pairs {
		if p == nil || strings.HasSuffix(p.Key, "/") {
			continue
		}
		rest, ok := strings.CutPrefix(p.Key, prefix)
		if !ok {
			continue
		}
		kind, after, _ := strings.Cut(rest, "/")
		label, member, _ := strings.Cut(after, "/")
		if label != "" && (kind == "pin" || kind == "drain") {
			if st.index == nil {
				st.index = map[string]uint64{}
			}
			st.index[label] = max(st.index[label], p.ModifyIndex)
		}
		switch {
		case kind == "pin" && label != "" && member == "" && !strings.Contains(after, "/"):
			c := st.clusters[label]
			pin := policy.ParsePin(p.Value)
			c.Pin = &pin
			st.clusters[label] = c
		case kind == "drain" && label != "" && member != "":
			c := st.clusters[label]
			c.Drains = append(c.Drains, policy.ParseDrain(member, p.Value))
			st.clusters[label] = c
		default:
			st.badKeys = append(st.badKeys, p.Key)
		}
	}
	for label, c := range st.clusters {
		slices.SortFunc(c.Drains, func(a, b policy.Drain) int { return strings.Compare(a.Member, b.Member) })
		st.clusters[label] = c
	}
	return st
}

// same reports whether next decides like s: the same keys, and no valid
// pin whose expiry came between the two reads (its validity is part of
// the data, whatever Consul's index says).
func (s controlState) same(next controlState) bool {
	if !reflect.DeepEqual(s.clusters, next.clusters) || !slices.Equal(s.badKeys, next.badKeys) {
		return false
	}
	for _, c := range s.clusters {
		if p := c.Pin; p != nil && p.Invalid == "" && s.readAt.Before(p.Expires) && !next.readAt.Before(p.Expires) {
			return false
		}
	}
	return true
}

// nextExpiry returns the earliest expiry, after now, of a pin s holds as
// valid, and false if there is none.
func (s controlState) nextExpiry(now time.Time) (time.Time, bool) {
	var next time.Time
	for _, c := range s.clusters {
		p := c.Pin
		if p == nil || p.Invalid != "" || !s.readAt.Before(p.Expires) {
			continue
		}
		if next.IsZero() || p.Expires.Before(next) {
			next = p.Expires
		}
	}
	if next.IsZero() {
		return next, false
	}
	return maxTime(next, now), true
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// controlWait shortens the wait of a blocking query on the control prefix
// so that it answers just after the earliest expiry of a valid pin: the
// pin stops applying then, not up to a wait time later.
func (r *resource) controlWait(wait time.Duration, now time.Time) time.Duration {
	res, _, _ := r.snapshot()
	exp, ok := res.ctl().nextExpiry(now)
	if !ok {
		return wait
	}
	return min(wait, max(exp.Sub(now)+expiryMargin, minControlWait))
}

// controlLocked returns the operator's control of cluster label: the main
// region's keys while they can be read, else the standby region's; while
// neither can be read, the last known of either (the main region's first),
// marked stale. w.mu must be held.
func (w *Watcher) controlLocked(label string) policy.Control {
	st, source, stale := w.controlSourceLocked()
	if st == nil {
		return policy.Control{Stale: true}
	}
	c := st.clusters[label]
	c.ReadAt, c.Source, c.Stale = st.readAt, source, stale
	return c
}

// controlSourceLocked returns the control state that applies, the region
// it came from and whether it is stale; nil before any region's control
// prefix was read. w.mu must be held.
func (w *Watcher) controlSourceLocked() (st *controlState, source string, stale bool) {
	var last *controlState
	lastSource := ""
	for _, region := range []*zones.Region{w.cfg.Main(), w.cfg.Standby()} {
		if region == nil {
			continue
		}
		r := w.resources[controlKey(w.cfg, region.Name)]
		if r == nil {
			continue
		}
		res, known, failing := r.snapshot()
		switch {
		case !known:
		case !failing:
			return res.ctl(), region.Name, false
		case last == nil:
			last, lastSource = res.ctl(), region.Name
		}
	}
	return last, lastSource, last != nil
}

// ControlStatus is how the operator's control keys are read.
type ControlStatus struct {
	// Prefix is the control prefix, as the zone file sets it.
	Prefix string `json:"prefix"`
	// Source is the region whose keys apply: the main region while its
	// prefix can be read, else the standby region; empty before either was
	// read.
	Source string `json:"source,omitempty"`
	// Stale is true while no region's control prefix can be read.
	Stale bool `json:"stale"`
	// ReadAt is when the keys that apply were read.
	ReadAt time.Time `json:"read_at,omitzero"`
	// Unknown counts the keys of Source that apply nowhere: a pin or drain
	// of a cluster the zone file does not have, or a key that is neither
	// pin/<cluster> nor drain/<cluster>/<member>. UnknownKeys lists the
	// first of them, sorted.
	Unknown     int      `json:"unknown"`
	UnknownKeys []string `json:"unknown_keys,omitempty"`
}

// ControlStatus returns how the control keys are read.
func (w *Watcher) ControlStatus() ControlStatus {
	w.mu.RLock()
	defer w.mu.RUnlock()
	prefix := w.cfg.ControlKeyPrefix()
	out := ControlStatus{Prefix: prefix}
	st, source, stale := w.controlSourceLocked()
	if st == nil {
		out.Stale = true
		return out
	}
	out.Source, out.Stale, out.ReadAt = source, stale, st.readAt
	known := make(map[string]bool, len(w.cfg.Clusters))
	for _, cl := range w.cfg.Clusters {
		known[cl.Label] = true
	}
	unknown := slices.Clone(st.badKeys)
	for label, c := range st.clusters {
		if known[label] {
			continue
		}
		if c.Pin != nil {
			unknown = append(unknown, PinKey(prefix, label))
		}
		for _, d := range c.Drains {
			unknown = append(unknown, DrainKey(prefix, label, d.Member))
		}
	}
	slices.Sort(unknown)
	out.Unknown = len(unknown)
	out.UnknownKeys = unknown[:min(len(unknown), maxUnknownKeys)]
	return out
}
