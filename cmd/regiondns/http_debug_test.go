package main

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/regiondns/regiondns/engine"
	"github.com/regiondns/regiondns/watch/consultest"
)

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == http.StatusOK {
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("GET %s: Content-Type %q, want application/json", url, ct)
		}
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: %v in %s", url, err, body)
		}
	}
	return resp.StatusCode
}

// /debug/history serves the kept changes, oldest first, filtered by
// cluster and by id; /debug/state?cluster= keeps one cluster; unknown
// clusters are 404 and a bad since is 400.
func TestDebugHistoryAndStateFilter(t *testing.T) {
	ts := startTestServer(t)
	for i, leader := range []string{"pg-2", "pg-3"} {
		ts.main.Set(func(f *consultest.Fake) {
			f.Index++
			f.Entries["orders"] = []*api.ServiceEntry{member("orders", leader, "10.0.0.9", "primary")}
		})
		waitUntil(t, "the change of leader", func() bool {
			h, _, _ := ts.e.History("orders", 0)
			return len(h) == i+1
		})
	}
	var doc historyDoc
	if code := getJSON(t, ts.http.URL+"/debug/history", &doc); code != http.StatusOK || doc.LatestID != 2 || len(doc.Changes) != 2 {
		t.Fatalf("/debug/history = %d %+v, want both changes", code, doc)
	}
	if c := doc.Changes[1]; c.ID != 2 || c.Cluster != "orders" || c.After.RW[0] != "pg-3@10.0.0.9:5432" || c.Before.RW[0] != "pg-2@10.0.0.9:5432" || c.Why == "" {
		t.Errorf("second change = %+v", c)
	}
	doc = historyDoc{}
	if code := getJSON(t, ts.http.URL+"/debug/history?cluster=orders&since=1", &doc); code != http.StatusOK || len(doc.Changes) != 1 || doc.Changes[0].ID != 2 {
		t.Errorf("/debug/history?cluster=orders&since=1 = %d %+v, want change 2", code, doc)
	}
	doc = historyDoc{}
	if code := getJSON(t, ts.http.URL+"/debug/history?cluster=billing", &doc); code != http.StatusOK || doc.Changes == nil || len(doc.Changes) != 0 {
		t.Errorf("/debug/history?cluster=billing = %d %+v, want an empty list", code, doc)
	}
	for path, want := range map[string]int{
		"/debug/history?cluster=nosuch": http.StatusNotFound,
		"/debug/history?since=-1":       http.StatusBadRequest,
		"/debug/state?cluster=nosuch":   http.StatusNotFound,
	} {
		if code := getJSON(t, ts.http.URL+path, nil); code != want {
			t.Errorf("GET %s = %d, want %d", path, code, want)
		}
	}
	var st engine.State
	if code := getJSON(t, ts.http.URL+"/debug/state?cluster=orders", &st); code != http.StatusOK || len(st.Clusters) != 1 ||
		st.Clusters[0].Label != "orders" || len(st.Clusters[0].History) != 2 || st.LatestChangeID != 2 {
		t.Errorf("/debug/state?cluster=orders = %d, %d clusters, latest %d", code, len(st.Clusters), st.LatestChangeID)
	}
}
