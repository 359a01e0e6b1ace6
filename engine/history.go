package engine

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/zones"
)

// DefaultHistory is how many decision changes per cluster the engine keeps
// when Options.History is not set.
const DefaultHistory = 100

// Change is one change of a cluster's answers, as the engine's history
// keeps it: the same change that is logged as "decision changed".
type Change struct {
	// ID is one more for each change of any cluster, from 1, never reused
	// while the process runs: two views of the history (two requests, the
	// status page and /debug/history) compare by it.
	ID uint64 `json:"id"`
	// Time is when the rebuild that made the change ran.
	Time    time.Time `json:"time"`
	Cluster string    `json:"cluster"`
	// Before and After are the cluster's answers around the change.
	Before Answers `json:"before"`
	After  Answers `json:"after"`
	// Why is the decision's reason after the change.
	Why string `json:"why"`
}

// Answers are what a change of a decision is measured on: the active
// region, each name's endpoints ("member@address:port", the node for a
// pool), split brain, and the region an operator's pin holds.
type Answers struct {
	Active     string   `json:"active"`
	RW         []string `json:"rw"`
	RO         []string `json:"ro"`
	PassiveRW  []string `json:"passive_rw"`
	PassiveRO  []string `json:"passive_ro"`
	SplitBrain bool     `json:"split_brain"`
	Pinned     string   `json:"pinned,omitempty"`
	Sync       []string `json:"sync,omitempty"`
}

// AnswersOf returns the Answers of d: what History and the log compare.
func AnswersOf(d policy.Decision) Answers {
	a := Answers{
		Active: d.Active, RW: endpointList(d.RW), RO: endpointList(d.RO),
		PassiveRW: endpointList(d.PassiveRW), PassiveRO: endpointList(d.PassiveRO), SplitBrain: d.SplitBrain,
	}
	if len(d.Sync) > 0 {
		a.Sync = endpointList(d.Sync)
	}
	if d.Pin != nil && d.Pin.Applied {
		a.Pinned = d.Pin.Region
	}
	return a
}

// String is the form of the log lines: "active=main rw=[pg-1@10.0.0.1:5432]
// ro=[...] passive-rw=[...] passive-ro=[...] split_brain=false", then
// " pinned=main" while a pin holds the active region and " sync=[...]"
// while sync.<cluster> answers.
func (a Answers) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "active=%s rw=[%s] ro=[%s] passive-rw=[%s] passive-ro=[%s] split_brain=%t",
		a.Active, strings.Join(a.RW, ","), strings.Join(a.RO, ","), strings.Join(a.PassiveRW, ","),
		strings.Join(a.PassiveRO, ","), a.SplitBrain)
	if a.Pinned != "" {
		b.WriteString(" pinned=" + a.Pinned)
	}
	if len(a.Sync) > 0 {
		b.WriteString(" sync=[" + strings.Join(a.Sync, ",") + "]")
	}
	return b.String()
}

// Equal reports whether a and o are the same answers.
func (a Answers) Equal(o Answers) bool {
	return a.Active == o.Active && a.SplitBrain == o.SplitBrain && a.Pinned == o.Pinned &&
		slices.Equal(a.RW, o.RW) && slices.Equal(a.RO, o.RO) &&
		slices.Equal(a.PassiveRW, o.PassiveRW) && slices.Equal(a.PassiveRO, o.PassiveRO) &&
		slices.Equal(a.Sync, o.Sync)
}

func endpointList(eps []policy.Endpoint) []string {
	out := make([]string, len(eps))
	for i, ep := range eps {
		name := ep.Member
		if name == "" {
			name = ep.Node
		}
		out[i] = fmt.Sprintf("%s@%s:%d", name, ep.Address, ep.Port)
	}
	return out
}

// recordLocked adds a change of cluster to its history, dropping the
// oldest beyond the bound; e.mu must be held.
func (e *Engine) recordLocked(cluster string, before, after Answers, why string, at time.Time) {
	if e.history == nil {
		e.history = map[string][]Change{}
	}
	e.lastChange++
	c := Change{ID: e.lastChange, Time: at, Cluster: cluster, Before: before, After: after, Why: why}
	h := e.history[cluster]
	if len(h) < e.historyLen {
		e.history[cluster] = append(h, c)
		return
	}
	// Full: shift in place, so the backing array stays at the bound.
	copy(h, h[1:])
	h[len(h)-1] = c
}

// History returns the kept changes with an ID above since, oldest first:
// of cluster, or of every cluster when cluster is "". It reports false
// when cluster is not configured. latest is the ID of the newest change of
// any cluster (0 before the first), for the next call's since.
func (e *Engine) History(cluster string, since uint64) (changes []Change, latest uint64, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if cluster != "" {
		if !e.configuredLocked(cluster) {
			return nil, e.lastChange, false
		}
		return after(e.history[cluster], since), e.lastChange, true
	}
	for _, h := range e.history {
		changes = append(changes, after(h, since)...)
	}
	slices.SortFunc(changes, func(a, b Change) int { return compareIDs(a.ID, b.ID) })
	return changes, e.lastChange, true
}

func compareIDs(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// after returns a copy of the changes of h with an ID above since.
func after(h []Change, since uint64) []Change {
	if since == math.MaxUint64 {
		return nil
	}
	i, _ := slices.BinarySearchFunc(h, since, func(c Change, id uint64) int { return compareIDs(c.ID, id+1) })
	return slices.Clone(h[i:])
}

// configuredLocked reports whether the configuration has cluster; e.mu
// must be held.
func (e *Engine) configuredLocked(cluster string) bool {
	return slices.ContainsFunc(e.cfg.Clusters, func(cl zones.Cluster) bool { return cl.Label == cluster })
}
