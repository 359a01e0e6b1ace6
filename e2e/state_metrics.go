package e2e

// Waits on what regiondns reports over HTTP, /debug/state and /metrics, for
// the resilience scenarios.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// debugState is the part of /debug/state the scenarios read.
type debugState struct {
	Regions []struct {
		Name      string   `json:"name"`
		Stale     bool     `json:"stale"`
		LastError string   `json:"last_error"`
		Via       []string `json:"via"`
		Failing   int      `json:"failing"`
	} `json:"regions"`
	Clusters []struct {
		Label    string `json:"label"`
		Decision struct {
			Active     string `json:"active"`
			Passive    string `json:"passive"`
			SplitBrain bool   `json:"split_brain"`
			Stale      bool   `json:"stale"`
			Reason     string `json:"reason"`
		} `json:"decision"`
	} `json:"clusters"`
}

// waitDebugState waits until /debug/state satisfies cond, which says why not.
func waitDebugState(t *testing.T, r *Regiondns, cond func(st *debugState) string) {
	t.Helper()
	WaitFor(t, followTimeout, func() (bool, string) {
		code, body, err := r.get("/debug/state")
		if err != nil || code != http.StatusOK {
			return false, fmt.Sprintf("GET /debug/state: %d %v", code, err)
		}
		var st debugState
		if err := json.Unmarshal(body, &st); err != nil {
			return false, fmt.Sprintf("/debug/state: %v in %s", err, body)
		}
		if why := cond(&st); why != "" {
			return false, why + "\n/debug/state regions and decisions: " + st.summary()
		}
		return true, ""
	})
}

func (st *debugState) summary() string {
	b, _ := json.Marshal(st)
	return string(b)
}

// regionCond returns a state condition on one region's Consul status.
func regionCond(region string, cond func(stale bool, lastErr string, via []string, failing int) string) func(*debugState) string {
	return func(st *debugState) string {
		for _, r := range st.Regions {
			if r.Name == region {
				return cond(r.Stale, r.LastError, r.Via, r.Failing)
			}
		}
		return "no region " + region + " in /debug/state"
	}
}

// decisionCond returns a state condition that every cluster's decision has
// active region active and split brain split.
func decisionCond(fl *layoutFleet, active string, split bool) func(*debugState) string {
	return func(st *debugState) string {
		for _, c := range fl.Clusters {
			found := false
			for _, cs := range st.Clusters {
				if cs.Label != c.Label {
					continue
				}
				found = true
				if d := cs.Decision; d.Active != active || d.SplitBrain != split {
					return fmt.Sprintf("cluster %s: active %q split_brain %t, want %q and %t (reason %q)",
						c.Label, d.Active, d.SplitBrain, active, split, d.Reason)
				}
			}
			if !found {
				return "no cluster " + c.Label + " in /debug/state"
			}
		}
		return ""
	}
}

// waitMetrics waits until every series (`name{labels}` as the exposition
// format prints it) has the value want says.
func waitMetrics(t *testing.T, r *Regiondns, want map[string]string) {
	t.Helper()
	WaitFor(t, followTimeout, func() (bool, string) {
		code, body, err := r.get("/metrics")
		if err != nil || code != http.StatusOK {
			return false, fmt.Sprintf("GET /metrics: %d %v", code, err)
		}
		values := map[string]string{}
		for _, line := range strings.Split(string(body), "\n") {
			if series, value, ok := strings.Cut(line, " "); ok && !strings.HasPrefix(line, "#") {
				values[series] = value
			}
		}
		for _, series := range sortedKeys(want) {
			if got, ok := values[series]; !ok || got != want[series] {
				return false, fmt.Sprintf("%s = %q (present %t), want %s", series, got, ok, want[series])
			}
		}
		return true, ""
	})
}
