package main

import (
	"bytes"
	"cmp"
	_ "embed"
	"html/template"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/regiondns/regiondns/engine"
	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/watch"
	"github.com/regiondns/regiondns/zones"
)

// The status page at /: what /debug/state says, for a person. It is
// rendered on the server from engine.State() with html/template, which
// escapes every value (cluster labels, member names and Consul error text
// come from the zone file and from Consul); it refreshes itself with a meta
// refresh and filters and sorts with a plain GET form, so it needs no
// JavaScript.

// Bounds of the page's parameters.
const (
	// defaultRefresh is the page's refresh period, in seconds: about how
	// often a failover changes what the table should show.
	defaultRefresh = 5
	// maxRefresh bounds ?refresh=, so that a bookmarked page still
	// refreshes now and then.
	maxRefresh = 3600
	// maxQuery bounds the filter text kept from ?q=.
	maxQuery = 200
	// statusHistory is how many decision changes the page shows, newest
	// first; /debug/history has them all.
	statusHistory = 20
)

//go:embed status.html
var statusHTML string

var statusTemplate = template.Must(template.New("status").Funcs(template.FuncMap{
	"ago": func(now, t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return now.Sub(t).Truncate(time.Second).String() + " ago"
	},
	"utc": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format(time.RFC3339)
	},
}).Parse(statusHTML))

// statusSorts are the orders the table can be sorted in, by ?sort= value;
// the first is the default.
var statusSorts = []statusSort{
	{Value: "state", Label: "state (problems first)"},
	{Value: "name", Label: "name"},
	{Value: "config", Label: "zone file order"},
}

type statusSort struct{ Value, Label string }

// statusPage is what the template renders.
type statusPage struct {
	Zone        string
	Now         time.Time
	Generation  uint64
	BuiltAt     time.Time
	ReloadError string
	// Regions are each region's Consul status; its error text is
	// redacted by the watcher.
	Regions []watch.RegionStatus
	// Clusters are those the filter keeps, in the chosen order; Total
	// counts every configured cluster, and Counts its problems.
	Clusters []statusCluster
	Total    int
	Counts   map[string]int
	History  []statusChange
	// The page's parameters: filter, order, refresh period (0: off), and
	// the links that turn the refresh off and on again.
	Query, Sort       string
	Sorts             []statusSort
	Refresh           int
	PauseURL, PlayURL string
}

// statusCluster is one row of the table.
type statusCluster struct {
	Label, Layout, Active string
	// Conditions are the cluster's problems and operator states, worst
	// first; rank is the first one's rank, for sort=state.
	Conditions []condition
	rank       int
	SplitBrain bool
	Stale      bool
	Reason     string
	// Names are the four names' endpoints, in zones' order.
	Names [4]statusName
	// Pin, Drains and Excluded are the operator's pin, the drained members
	// and the replicas left out of the read names with why, each one line;
	// an empty list renders as a dash, and so does Pin without a pin.
	Pin      string
	Drains   []string
	Excluded []string
	// search is what the filter matches, lower case.
	search string
}

// statusName is one of a cluster's names and its endpoints.
type statusName struct {
	Label     string
	Endpoints []statusEndpoint
}

// statusEndpoint is one answer: who (member, or node for a pool) and where.
type statusEndpoint struct {
	Who, Addr string
}

// statusChange is one decision change, newest first on the page.
type statusChange struct {
	ID            uint64
	Time          time.Time
	Cluster       string
	Before, After string
	Why           string
}

// condition is a word of the state column; the lower its rank, the
// higher the cluster sorts with sort=state.
type condition struct {
	Word, Class string
	rank        int
}

// The conditions a cluster can be in, worst first.
var (
	condSplitBrain = condition{"split brain", "bad", 0}
	condNoRW       = condition{"no rw", "bad", 1}
	condStale      = condition{"stale", "warn", 2}
	condExcluded   = condition{"replicas out", "warn", 3}
	condOK         = condition{"ok", "ok", 9}
)

// statusHandler serves the status page.
func statusHandler(e *engine.Engine) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		page := newStatusPage(e.State(), r.URL.Query(), time.Now())
		var buf bytes.Buffer
		if err := statusTemplate.Execute(&buf, page); err != nil {
			http.Error(w, "status page: "+err.Error(), http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		// Nothing on the page comes from elsewhere, nor runs.
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		w.Write(buf.Bytes())
	}
}

// newStatusPage makes the page of st for the request's parameters q, at
// now.
func newStatusPage(st engine.State, q url.Values, now time.Time) *statusPage {
	p := &statusPage{
		Zone: st.Zone, Now: now, Generation: st.Generation, BuiltAt: st.BuiltAt,
		ReloadError: st.Config.LastReloadError, Regions: st.Regions, Total: len(st.Clusters), Counts: map[string]int{},
		Sorts: statusSorts, Sort: statusSorts[0].Value, Refresh: defaultRefresh,
	}
	p.Query = strings.TrimSpace(q.Get("q"))
	if len(p.Query) > maxQuery {
		p.Query = strings.ToValidUTF8(p.Query[:maxQuery], "")
	}
	if s := q.Get("sort"); slices.ContainsFunc(statusSorts, func(o statusSort) bool { return o.Value == s }) {
		p.Sort = s
	}
	if v, err := strconv.Atoi(q.Get("refresh")); err == nil && v >= 0 {
		p.Refresh = min(v, maxRefresh)
	}
	p.PauseURL, p.PlayURL = p.link(0), p.link(defaultRefresh)

	terms := strings.Fields(strings.ToLower(p.Query))
	for i := range st.Clusters {
		c := newStatusCluster(&st.Clusters[i])
		for _, cond := range c.Conditions {
			p.Counts[cond.Word]++
		}
		if matches(c.search, terms) {
			p.Clusters = append(p.Clusters, c)
		}
	}
	switch p.Sort {
	case "state":
		slices.SortStableFunc(p.Clusters, func(a, b statusCluster) int {
			if a.rank != b.rank {
				return a.rank - b.rank
			}
			return strings.Compare(a.Label, b.Label)
		})
	case "name":
		slices.SortStableFunc(p.Clusters, func(a, b statusCluster) int { return strings.Compare(a.Label, b.Label) })
	}
	p.History = statusHistoryOf(st)
	return p
}

// link is the page's URL with its filter and order, refreshing every
// refresh seconds (0: never).
func (p *statusPage) link(refresh int) string {
	v := url.Values{}
	if p.Query != "" {
		v.Set("q", p.Query)
	}
	v.Set("sort", p.Sort)
	v.Set("refresh", strconv.Itoa(refresh))
	return "?" + v.Encode()
}

// matches reports whether every term occurs in s.
func matches(s string, terms []string) bool {
	for _, t := range terms {
		if !strings.Contains(s, t) {
			return false
		}
	}
	return true
}

// newStatusCluster makes the row of cs.
func newStatusCluster(cs *engine.ClusterState) statusCluster {
	d := &cs.Decision
	c := statusCluster{
		Label: cs.Label, Layout: string(cs.Layout), Active: d.Active,
		SplitBrain: d.SplitBrain, Stale: d.Stale, Reason: d.Reason,
		Names: [4]statusName{
			{zones.LabelRW, statusEndpoints(d.RW)},
			{zones.LabelRO, statusEndpoints(d.RO)},
			{zones.LabelPassiveRW, statusEndpoints(d.PassiveRW)},
			{zones.LabelPassiveRO, statusEndpoints(d.PassiveRO)},
		},
		Pin:      cmp.Or(pinOf(cs), "—"),
		Drains:   drainsOf(cs),
		Excluded: excludedOf(cs),
	}
	if d.SplitBrain {
		c.Conditions = append(c.Conditions, condSplitBrain)
	}
	if len(d.RW) == 0 {
		c.Conditions = append(c.Conditions, condNoRW)
	}
	if d.Stale {
		c.Conditions = append(c.Conditions, condStale)
	}
	if len(c.Excluded) > 0 {
		c.Conditions = append(c.Conditions, condExcluded)
	}
	if len(c.Conditions) == 0 {
		c.Conditions = append(c.Conditions, condOK)
	}
	c.rank = c.Conditions[0].rank

	var b strings.Builder
	for _, s := range []string{c.Label, c.Layout, c.Active, c.Reason, c.Pin} {
		b.WriteString(s)
		b.WriteByte(' ')
	}
	for _, cond := range c.Conditions {
		b.WriteString(cond.Word + " ")
	}
	for _, n := range c.Names {
		for _, ep := range n.Endpoints {
			b.WriteString(ep.Who + " " + ep.Addr + " ")
		}
	}
	for _, s := range slices.Concat(c.Drains, c.Excluded) {
		b.WriteString(s + " ")
	}
	c.search = strings.ToLower(b.String())
	return c
}

func statusEndpoints(eps []policy.Endpoint) []statusEndpoint {
	out := make([]statusEndpoint, len(eps))
	for i, ep := range eps {
		who := ep.Member
		if who == "" {
			who = ep.Node
		}
		out[i] = statusEndpoint{Who: who, Addr: netip.AddrPortFrom(ep.Address, ep.Port).String()}
	}
	return out
}

// excludedOf lists the replicas of each region that its read names leave
// out, with why: the registered replicas the decision does not count as
// passing, with their health.
func excludedOf(cs *engine.ClusterState) []string {
	var out []string
	for _, view := range []policy.RegionView{cs.Decision.Main, cs.Decision.Standby} {
		for _, m := range cs.Observed[view.Name].Members {
			if m.Role != policy.RoleReplica.String() || slices.Contains(view.Replicas, m.Member) {
				continue
			}
			out = append(out, m.Member+" ("+view.Name+", "+m.Health+")")
		}
	}
	return out
}

// pinOf is the cluster's pin in one line: the region it holds and until
// when, or why it is ignored; "" without a pin.
func pinOf(cs *engine.ClusterState) string {
	if cs.Decision.Pin == nil {
		return ""
	}
	return cs.Decision.Pin.Why
}

// drainsOf lists the cluster's drained members, each with its reason, and
// says of those that lead a region that the drain was not applied; nil
// without drains.
func drainsOf(cs *engine.ClusterState) []string {
	var out []string
	for _, d := range cs.Control.Drains {
		line := d.Member
		if slices.Contains(cs.Decision.DrainNotApplied, d.Member) {
			line += " (not applied: leads a region)"
		}
		if d.Reason != "" {
			line += ": " + d.Reason
		}
		out = append(out, line)
	}
	return out
}

// statusHistoryOf returns the latest decision changes of every cluster,
// newest first, at most statusHistory.
func statusHistoryOf(st engine.State) []statusChange {
	var all []engine.Change
	for i := range st.Clusters {
		all = append(all, st.Clusters[i].History...)
	}
	slices.SortFunc(all, func(a, b engine.Change) int { return cmp.Compare(b.ID, a.ID) })
	all = all[:min(len(all), statusHistory)]
	out := make([]statusChange, len(all))
	for i, c := range all {
		out[i] = statusChange{ID: c.ID, Time: c.Time, Cluster: c.Cluster,
			Before: c.Before.String(), After: c.After.String(), Why: c.Why}
	}
	return out
}
