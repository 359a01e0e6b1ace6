package main

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"
)

// The alert rules and the Grafana dashboard that ship in deploy/.
const (
	alertsFile    = "../../deploy/prometheus/alerts.yml"
	dashboardFile = "../../deploy/grafana/regiondns.json"
)

// pendingMetrics are metrics the alerts and the dashboard read that the
// operator control (pins and drains) exports, with their labels; they are
// not in this registry yet. TestDeployMetricsExist fails once one of them
// is registered: then it comes off this list.
var pendingMetrics = map[string][]string{}

// targetLabels are the labels Prometheus adds to every scraped series.
var targetLabels = []string{"job", "instance"}

// Every PromQL expression of the alert rules and of the dashboard (its
// panels' queries and its variables' label_values queries) names only
// metrics the registry has, with labels they have: a renamed metric or
// label would leave an alert that never fires and a panel without data.
func TestDeployMetricsExist(t *testing.T) {
	families, err := testMetrics(t).registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string][]string{} // by metric name, as PromQL sees it
	for _, mf := range families {
		var names []string
		if len(mf.GetMetric()) > 0 {
			for _, l := range mf.GetMetric()[0].GetLabel() {
				names = append(names, l.GetName())
			}
		}
		labels[mf.GetName()] = names
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM:
			labels[mf.GetName()+"_bucket"] = append(slices.Clone(names), "le")
			labels[mf.GetName()+"_sum"], labels[mf.GetName()+"_count"] = names, names
		case dto.MetricType_SUMMARY:
			labels[mf.GetName()+"_sum"], labels[mf.GetName()+"_count"] = names, names
		}
	}
	for name, l := range pendingMetrics {
		if _, ok := labels[name]; ok {
			t.Errorf("%s is registered now: take it off pendingMetrics", name)
		}
		labels[name] = l
	}

	exprs := alertExprs(t)
	if len(exprs) < 7 {
		t.Fatalf("%s has %d rules, want at least the 7 alerts", alertsFile, len(exprs))
	}
	n := len(exprs)
	exprs = append(exprs, dashboardExprs(t)...)
	if len(exprs)-n < 20 {
		t.Fatalf("%s has %d queries: not read right?", dashboardFile, len(exprs)-n)
	}
	for _, e := range exprs {
		sels := selectors(e)
		if m := labelValues.FindStringSubmatch(e); m != nil {
			// Grafana's label_values(expr, label): the label must be
			// the metric's too.
			sels = selectors(m[1])
			for i := range sels {
				sels[i].labels = append(sels[i].labels, m[2])
			}
		}
		if len(sels) == 0 {
			t.Errorf("%q names no metric", e)
		}
		for _, s := range sels {
			have, ok := labels[s.metric]
			if !ok {
				t.Errorf("%q: no metric %s in the registry", e, s.metric)
				continue
			}
			for _, l := range s.labels {
				if !slices.Contains(have, l) && !slices.Contains(targetLabels, l) {
					t.Errorf("%q: metric %s has no label %s (it has %v)", e, s.metric, l, have)
				}
			}
		}
	}
}

// The selectors lexer finds the metric names and matcher labels of PromQL
// expressions, and nothing else: functions, aggregations, keywords,
// grouping labels, strings, numbers, ranges and Grafana variables.
func TestSelectors(t *testing.T) {
	tests := []struct {
		expr string
		want []selector
	}{
		{`up`, []selector{{metric: "up"}}},
		{`regiondns_cluster_split_brain == 1`, []selector{{metric: "regiondns_cluster_split_brain"}}},
		{`sum by (cluster, le) (rate(a_total{job=~"$job", x="a,b}"}[$__rate_interval])) / on (cluster) group_left(y) b offset 5m`,
			[]selector{{metric: "a_total", labels: []string{"job", "x"}}, {metric: "b"}}},
		{`histogram_quantile(0.99, sum without (instance) (rate(h_bucket[5m]))) > bool 1e3`, []selector{{metric: "h_bucket"}}},
		{`count(m{name="rw"} == 0) or vector(0)`, []selector{{metric: "m", labels: []string{"name"}}}},
		{`{__name__="x"}`, nil},
		{`topk(3, ${metric:raw})`, nil},
	}
	for _, tt := range tests {
		if got := selectors(tt.expr); !slices.EqualFunc(got, tt.want, func(a, b selector) bool {
			return a.metric == b.metric && slices.Equal(a.labels, b.labels)
		}) {
			t.Errorf("selectors(%q) = %v, want %v", tt.expr, got, tt.want)
		}
	}
}

// alertExprs returns the expressions of every rule of the alerts file.
func alertExprs(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &rules); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	var out []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			out = append(out, r.Expr)
		}
	}
	return out
}

// dashboardExprs returns every "expr" of the dashboard (its panels'
// targets, at any depth) and the query of each of its query variables.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels     []any `json:"panels"`
		Templating struct {
			List []struct {
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					out = append(out, s)
				} else {
					walk(x)
				}
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(dash.Panels)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		switch q := v.Query.(type) {
		case string:
			out = append(out, q)
		case map[string]any:
			if s, ok := q["query"].(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// selector is a metric a PromQL expression reads and the labels its
// matchers name.
type selector struct {
	metric string
	labels []string
}

// promqlWords are PromQL's keywords and aggregation operators: words that
// are not metric names though no parenthesis may follow them.
var promqlWords = []string{
	"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
	"atan2", "inf", "nan", "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
	"bottomk", "topk", "quantile", "limitk", "limit_ratio",
}

// groupingWords are followed by a parenthesised list of label names.
var groupingWords = []string{"by", "without", "on", "ignoring", "group_left", "group_right"}

var (
	labelValues  = regexp.MustCompile(`^label_values\((.*),\s*(\w+)\)$`)
	promqlIdent  = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*`)
	grafanaVar   = regexp.MustCompile(`^\$(\{[^}]*\}|\w+)`)
	promqlNumber = regexp.MustCompile(`^[0-9][0-9a-zA-Z.+]*`)
)

// selectors returns the metrics expr reads, with their matchers' labels,
// in order. It is a lexer, not a parser: enough for the expressions that
// ship in deploy/.
func selectors(expr string) []selector {
	var out []selector
	s := expr
	for len(s) > 0 {
		switch c := s[0]; {
		case c == '"' || c == '\'' || c == '`':
			s = skipString(s)
		case c == '$':
			if m := grafanaVar.FindString(s); m != "" {
				s = s[len(m):]
			} else {
				s = s[1:]
			}
		case c == '[':
			s = s[strings.IndexByte(s+"]", ']')+1:]
		case c == '{':
			// A selector without a metric name: its matchers are not
			// checked.
			_, s = matchers(s)
		case c >= '0' && c <= '9' || c == '.':
			s = s[max(1, len(promqlNumber.FindString(s))):]
		case promqlIdent.MatchString(s):
			word := promqlIdent.FindString(s)
			s = s[len(word):]
			rest := strings.TrimLeft(s, " \t\n")
			switch {
			case slices.Contains(groupingWords, word) && strings.HasPrefix(rest, "("):
				s = rest[strings.IndexByte(rest+")", ')')+1:]
			case slices.Contains(promqlWords, word), strings.HasPrefix(rest, "("):
				// A keyword, an aggregation or a function.
			default:
				sel := selector{metric: word}
				if strings.HasPrefix(rest, "{") {
					sel.labels, s = matchers(rest)
				}
				out = append(out, sel)
			}
		default:
			s = s[1:]
		}
	}
	return out
}

// matchers reads the label matchers {...} at the start of s and returns
// their label names and what follows.
func matchers(s string) ([]string, string) {
	var labels []string
	s = s[1:]
	for len(s) > 0 {
		s = strings.TrimLeft(s, " \t\n,")
		switch {
		case strings.HasPrefix(s, "}"):
			return labels, s[1:]
		case s[0] == '"' || s[0] == '\'' || s[0] == '`':
			s = skipString(s)
		case promqlIdent.MatchString(s):
			l := promqlIdent.FindString(s)
			labels = append(labels, l)
			s = strings.TrimLeft(s[len(l):], " \t\n=~!")
			if len(s) > 0 && (s[0] == '"' || s[0] == '\'' || s[0] == '`') {
				s = skipString(s)
			}
		default:
			s = s[1:]
		}
	}
	return labels, s
}

// skipString returns s after the quoted string it starts with.
func skipString(s string) string {
	q := s[0]
	for i := 1; i < len(s); i++ {
		switch {
		case s[i] == '\\' && q != '`':
			i++
		case s[i] == q:
			return s[i+1:]
		}
	}
	return ""
}
