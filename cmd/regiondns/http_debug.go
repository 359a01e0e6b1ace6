package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/regiondns/regiondns/engine"
)

// stateHandler serves /debug/state: what the engine knows, as JSON;
// ?cluster=<label> keeps that cluster alone (404 when it is not
// configured), which is what regiondns ctl reads.
func stateHandler(e *engine.Engine) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		st := e.State()
		if label := r.URL.Query().Get("cluster"); label != "" {
			var keep []engine.ClusterState
			for _, cs := range st.Clusters {
				if cs.Label == label {
					keep = append(keep, cs)
				}
			}
			if keep == nil {
				http.Error(w, fmt.Sprintf("cluster %q is not configured", label), http.StatusNotFound)
				return
			}
			st.Clusters = keep
		}
		writeJSON(w, st)
	}
}

// historyDoc is the document /debug/history serves.
type historyDoc struct {
	// LatestID is the ID of the newest change of any cluster: the next
	// request's since, to get only what is new.
	LatestID uint64 `json:"latest_id"`
	// Changes are the kept changes, oldest first.
	Changes []engine.Change `json:"changes"`
}

// historyHandler serves /debug/history: the kept decision changes, oldest
// first; ?cluster=<label> keeps one cluster's (404 when it is not
// configured), ?since=<id> those with a higher ID.
func historyHandler(e *engine.Engine) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var since uint64
		if s := q.Get("since"); s != "" {
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				http.Error(w, fmt.Sprintf("since: %q is not valid; want a change id, such as 0", s), http.StatusBadRequest)
				return
			}
			since = n
		}
		changes, latest, ok := e.History(q.Get("cluster"), since)
		if !ok {
			http.Error(w, fmt.Sprintf("cluster %q is not configured", q.Get("cluster")), http.StatusNotFound)
			return
		}
		if changes == nil {
			changes = []engine.Change{}
		}
		writeJSON(w, historyDoc{LatestID: latest, Changes: changes})
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
