package main

import (
	"slices"
	"testing"
	"time"

	"github.com/regiondns/regiondns/engine"
	"github.com/regiondns/regiondns/policy"
)

// The page's pin, drains and history come from the state: the pin's own
// line, each drain with its reason (and, on a leader, that it was not
// applied), and the changes of every cluster newest first, at most
// statusHistory.
func TestStatusPageControlAndHistory(t *testing.T) {
	cs := &engine.ClusterState{Label: "orders"}
	if got := pinOf(cs); got != "" {
		t.Errorf("pinOf without a pin = %q, want empty", got)
	}
	cs.Decision.Pin = &policy.PinState{Region: "main", Applied: true, Why: "pinned to main until 12:00 (drill)"}
	if got := pinOf(cs); got != cs.Decision.Pin.Why {
		t.Errorf("pinOf = %q, want %q", got, cs.Decision.Pin.Why)
	}
	cs.Control.Drains = []policy.Drain{{Member: "pg-1"}, {Member: "pg-2", Reason: "vacuum full"}}
	cs.Decision.DrainNotApplied = []string{"pg-1"}
	want := []string{"pg-1 (not applied: leads a region)", "pg-2: vacuum full"}
	if got := drainsOf(cs); !slices.Equal(got, want) {
		t.Errorf("drainsOf = %q, want %q", got, want)
	}

	var st engine.State
	at := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for c, label := range []string{"a", "b"} {
		cl := engine.ClusterState{Label: label}
		for i := range statusHistory {
			id := uint64(2*i + c + 1)
			cl.History = append(cl.History, engine.Change{ID: id, Cluster: label, Time: at.Add(time.Duration(id) * time.Second),
				After: engine.Answers{Active: "main"}, Why: "why"})
		}
		st.Clusters = append(st.Clusters, cl)
	}
	got := statusHistoryOf(st)
	if len(got) != statusHistory {
		t.Fatalf("%d changes, want %d", len(got), statusHistory)
	}
	for i, c := range got {
		if want := uint64(2*statusHistory - i); c.ID != want {
			t.Errorf("change %d has id %d, want %d (newest first, across clusters)", i, c.ID, want)
		}
		if c.After == "" || c.Why != "why" {
			t.Errorf("change %d = %+v, want its answers and why", i, c)
		}
	}
}
