package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/regiondns/regiondns/engine"
	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/watch"
)

// statusRow is what a row of the status page's cluster table shows.
type statusRow struct {
	Active     string
	SplitBrain bool
	// Names holds each name's endpoint addresses ("address:port"), by
	// name label; States the words of the state column.
	Names  map[string][]string
	States []string
}

// parseStatusRows returns the rows of the cluster table of a status page
// (as served, or as a browser's DOM), by cluster, and the clusters in the
// order shown.
func parseStatusRows(t testing.TB, page []byte) (map[string]statusRow, []string) {
	t.Helper()
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]statusRow{}
	var order []string
	for n := range doc.Descendants() {
		label := attr(n, "data-cluster")
		if n.Type != html.ElementNode || n.Data != "tr" || label == "" {
			continue
		}
		r := statusRow{Active: attr(n, "data-active"), SplitBrain: attr(n, "data-split-brain") == "true", Names: map[string][]string{}}
		for td := range n.ChildNodes() {
			if td.Type != html.ElementNode || td.Data != "td" {
				continue
			}
			class := attr(td, "class")
			for s := range td.Descendants() {
				if addr := attr(s, "data-addr"); addr != "" {
					r.Names[class] = append(r.Names[class], addr)
				}
				if class == "state" && s.Type == html.TextNode {
					r.States = append(r.States, s.Data)
				}
			}
		}
		if _, dup := rows[label]; dup {
			t.Errorf("cluster %s has two rows", label)
		}
		rows[label] = r
		order = append(order, label)
	}
	return rows, order
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// checkStatusRows checks that the rows show every cluster of st, with its
// active region, split brain and each name's endpoints, and nothing else.
func checkStatusRows(t testing.TB, rows map[string]statusRow, st engine.State) {
	t.Helper()
	if len(rows) != len(st.Clusters) {
		t.Errorf("%d rows, want one per cluster: %d", len(rows), len(st.Clusters))
	}
	for _, cs := range st.Clusters {
		r, ok := rows[cs.Label]
		if !ok {
			t.Errorf("cluster %s has no row", cs.Label)
			continue
		}
		d := cs.Decision
		if r.Active != d.Active || r.SplitBrain != d.SplitBrain {
			t.Errorf("cluster %s: row says active %q split brain %t, /debug/state %q %t", cs.Label, r.Active, r.SplitBrain, d.Active, d.SplitBrain)
		}
		for name, eps := range map[string][]policy.Endpoint{"rw": d.RW, "ro": d.RO, "passive-rw": d.PassiveRW, "passive-ro": d.PassiveRO} {
			want := make([]string, 0, len(eps))
			for _, ep := range eps {
				want = append(want, netip.AddrPortFrom(ep.Address, ep.Port).String())
			}
			if got := r.Names[name]; !slices.Equal(got, want) && len(got)+len(want) > 0 {
				t.Errorf("cluster %s: %s shows %v, /debug/state %v", cs.Label, name, got, want)
			}
		}
	}
}

func getStatus(t testing.TB, h http.Handler, query string) []byte {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/"+query, nil))
	if ct := rec.Header().Get("Content-Type"); rec.Code != http.StatusOK || ct != "text/html; charset=utf-8" {
		t.Fatalf("GET /%s = %d %q, want 200 text/html", query, rec.Code, ct)
	}
	return rec.Body.Bytes()
}

// The status page shows every cluster of a fleet with what /debug/state
// says of it, problems first, and counts each problem right. The browser
// test does the same with 1,000 clusters, and times the rendering.
func TestStatusPageMatchesState(t *testing.T) {
	const n = 200
	e, m := startFleet(t, n)
	page := getStatus(t, newHTTPHandler(e, m), "")
	rows, order := parseStatusRows(t, page)
	checkStatusRows(t, rows, e.State())

	// Sorted by state, problems first: the split brains lead, the
	// healthy follow at the end.
	if first := rows[order[0]]; !first.SplitBrain {
		t.Errorf("first row %s is not a split brain: %+v", order[0], first)
	}
	if last := rows[order[len(order)-1]]; !slices.Equal(last.States, []string{"ok"}) {
		t.Errorf("last row %s is %v, want ok", order[len(order)-1], last.States)
	}
	counts := map[fleetCluster]int{}
	for i := range n {
		counts[fleetKind(i)]++
	}
	for kind, word := range map[fleetCluster]string{fleetSplitBrain: "split brain", fleetNoLeader: "no rw", fleetReplicaOut: "replicas out"} {
		n := 0
		for _, r := range rows {
			if slices.Contains(r.States, word) {
				n++
			}
		}
		if n != counts[kind] {
			t.Errorf("%d rows say %q, want %d", n, word, counts[kind])
		}
	}
}

// The filter keeps the rows whose text holds every word; the orders are
// by state, by name and the zone file's; refresh=0 stops the refresh.
func TestStatusPageFilterAndSort(t *testing.T) {
	e, m := startFleet(t, 60)
	h := newHTTPHandler(e, m)
	st := e.State()

	rows, _ := parseStatusRows(t, getStatus(t, h, "?q=SPLIT+brain"))
	var want []string
	for i := range 60 {
		if fleetKind(i) == fleetSplitBrain {
			want = append(want, fleetLabel(i))
		}
	}
	slices.Sort(want)
	if got := slices.Sorted(mapKeys(rows)); !slices.Equal(got, want) {
		t.Errorf("?q=SPLIT brain shows %v, want %v", got, want)
	}
	rows, _ = parseStatusRows(t, getStatus(t, h, "?q=orders-001+10.10.8.1:5432"))
	if got := slices.Sorted(mapKeys(rows)); !slices.Equal(got, []string{"orders-001"}) {
		t.Errorf("?q=orders-001 10.10.8.1:5432 shows %v, want [orders-001]", got)
	}
	if page := getStatus(t, h, "?q=nothing-like-it"); !bytes.Contains(page, []byte("No cluster matches the filter.")) {
		t.Error("a filter that matches nothing does not say so")
	}

	_, byName := parseStatusRows(t, getStatus(t, h, "?sort=name"))
	if !slices.IsSorted(byName) || len(byName) != 60 {
		t.Errorf("?sort=name: %d rows, sorted %t", len(byName), slices.IsSorted(byName))
	}
	_, byConfig := parseStatusRows(t, getStatus(t, h, "?sort=config"))
	for i, label := range byConfig {
		if label != st.Clusters[i].Label {
			t.Fatalf("?sort=config: row %d is %s, want %s", i, label, st.Clusters[i].Label)
		}
	}
	_, byState := parseStatusRows(t, getStatus(t, h, "?sort=bogus"))
	ranks := make([]int, len(byState))
	for i, label := range byState {
		ranks[i] = newStatusCluster(&st.Clusters[slices.IndexFunc(st.Clusters, func(c engine.ClusterState) bool { return c.Label == label })]).rank
	}
	if !slices.IsSorted(ranks) {
		t.Errorf("an unknown ?sort= is not the default, by state: ranks %v", ranks)
	}

	refresh := []byte(`<meta http-equiv="refresh" content="5">`)
	if page := getStatus(t, h, ""); !bytes.Contains(page, refresh) {
		t.Error("the page does not refresh itself every 5 s")
	}
	if page := getStatus(t, h, "?refresh=0"); bytes.Contains(page, []byte(`http-equiv="refresh"`)) {
		t.Error("?refresh=0 still refreshes")
	}
	if page := getStatus(t, h, ""); !bytes.Contains(page, []byte(`name="viewport" content="width=device-width, initial-scale=1"`)) {
		t.Error("the page has no viewport for phones")
	}
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// What comes from Consul, the zone file or the request is escaped: a
// region's error text, a member name, the filter box.
func TestStatusPageEscapes(t *testing.T) {
	evil := `<script>alert(1)</script>`
	st := engine.State{
		Zone:    "pg.example.internal.",
		Regions: []watch.RegionStatus{{Name: "main", Ready: true, Stale: true, LastError: evil}},
		Clusters: []engine.ClusterState{{
			Label: "orders", Layout: policy.LayoutDirect,
			Decision: policy.Decision{Active: "main", Reason: evil,
				RW: []policy.Endpoint{{Member: evil, Address: netip.MustParseAddr("10.0.0.1"), Port: 5432}}},
		}},
	}
	var buf bytes.Buffer
	if err := statusTemplate.Execute(&buf, newStatusPage(st, url.Values{"q": {evil}}, time.Now())); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "<script>") || !strings.Contains(buf.String(), `value="&lt;script&gt;`) {
		t.Errorf("the filter box does not hold the escaped filter, or the page an unescaped <script>:\n%s", buf.String())
	}
	st.Regions[0].LastError = "permission denied"
	buf.Reset()
	if err := statusTemplate.Execute(&buf, newStatusPage(st, url.Values{}, time.Now())); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "permission denied", `<span class="badge bad">stale</span>`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}

// Columns the engine's state has nothing for yet show a dash; the
// replicas the decision leaves out are listed with their region and
// health.
func TestStatusPageColumns(t *testing.T) {
	e, m := startFleet(t, 4) // orders-000 .. auth-000; cluster 3 has a replica out
	page := getStatus(t, newHTTPHandler(e, m), "?sort=config")
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	cells := map[string]map[string]string{}
	for n := range doc.Descendants() {
		if label := attr(n, "data-cluster"); label != "" {
			cells[label] = map[string]string{}
			for td := range n.ChildNodes() {
				if td.Type == html.ElementNode {
					cells[label][attr(td, "class")] = text(td)
				}
			}
		}
	}
	for label, want := range map[string]map[string]string{
		"orders-000": {"pin": "—", "drains": "—", "excluded": "—", "active": "main"},
		"search-000": {"excluded": "pg-m3 (main, critical)", "state": "replicas out"},
	} {
		for class, v := range want {
			if got := cells[label][class]; got != v {
				t.Errorf("%s %s = %q, want %q", label, class, got, v)
			}
		}
	}
}

// text is the text of n and its descendants, trimmed.
func text(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
		}
	}
	return strings.TrimSpace(b.String())
}

// BenchmarkStatusPage renders the status page of 1,000 clusters.
func BenchmarkStatusPage(b *testing.B) {
	e, m := startFleet(b, 1000)
	h := newHTTPHandler(e, m)
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		io.Copy(io.Discard, rec.Body)
	}
}
