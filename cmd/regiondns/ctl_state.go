package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/regiondns/regiondns/engine"
	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/watch"
)

// state prints what the server decided for cluster label (every cluster
// when label is ""), pins and drains included; without --server, the
// control keys as Consul holds them.
func (c *ctl) state(label string) error {
	if label != "" {
		if _, err := c.cluster(label); err != nil {
			return err
		}
	}
	if c.o.server == "" {
		return c.keysState(label)
	}
	st, err := c.serverState(label)
	if err != nil {
		return err
	}
	ctlState := "fresh"
	if st.Control.Stale {
		ctlState = "stale: no region's control prefix can be read"
	}
	fmt.Fprintf(c.out, "control keys under %s/: from region %s, read %s, %s; %d unknown keys\n",
		st.Control.Prefix, st.Control.Source, st.Control.ReadAt.UTC().Format(time.RFC3339), ctlState, st.Control.Unknown)
	for _, k := range st.Control.UnknownKeys {
		fmt.Fprintf(c.out, "  unknown key %s: applies to no configured cluster\n", k)
	}
	for i := range st.Clusters {
		printCluster(c.out, &st.Clusters[i])
	}
	return nil
}

// printCluster prints one cluster's decision, pin, drains and last change.
func printCluster(w io.Writer, cs *engine.ClusterState) {
	d := &cs.Decision
	fmt.Fprintf(w, "\n%s: active region %s, split brain %t, stale %t\n", cs.Label, d.Active, d.SplitBrain, d.Stale)
	printAnswers(w, engine.AnswersOf(*d), "  ")
	fmt.Fprintf(w, "  why: %s\n", d.Reason)
	printControl(w, cs.Control, d)
	if n := len(cs.History); n > 0 {
		h := cs.History[n-1]
		fmt.Fprintf(w, "  last change #%d at %s: %s -> %s\n", h.ID, h.Time.UTC().Format(time.RFC3339), h.Before, h.After)
	}
}

// printControl prints what became of a cluster's pin and drains.
func printControl(w io.Writer, c policy.Control, d *policy.Decision) {
	switch {
	case d.Pin == nil:
		fmt.Fprintln(w, "  pin: none")
	case d.Pin.Applied:
		fmt.Fprintf(w, "  pin: applied: %s\n", d.Pin.Why)
	default:
		fmt.Fprintf(w, "  pin: IGNORED (%s): %s\n", d.Pin.Ignored, d.Pin.Why)
	}
	for _, dr := range c.Drains {
		what := "drained: not a passing replica now"
		switch {
		case slices.Contains(d.Drained, dr.Member):
			what = "drained: out of the read names"
		case slices.Contains(d.DrainNotApplied, dr.Member):
			what = "NOT drained: it leads a region (a switchover is Patroni's job)"
		}
		fmt.Fprintf(w, "  %s%s: %s\n", dr.Member, parenthesized(dr.Reason), what)
	}
}

// printAnswers prints each name's endpoints.
func printAnswers(w io.Writer, a engine.Answers, indent string) {
	for _, n := range []struct {
		name string
		eps  []string
	}{{"rw", a.RW}, {"ro", a.RO}, {"passive-rw", a.PassiveRW}, {"passive-ro", a.PassiveRO}} {
		fmt.Fprintf(w, "%s%-11s %s\n", indent, n.name, endpointsText(n.eps))
	}
}

func endpointsText(eps []string) string {
	if len(eps) == 0 {
		return "(no endpoints: NODATA)"
	}
	return strings.Join(eps, " ")
}

// printChange prints the answers of before and after, name by name.
func printChange(w io.Writer, before, after policy.Decision) {
	b, a := engine.AnswersOf(before), engine.AnswersOf(after)
	line := func(name, was, now string) {
		if was == now {
			fmt.Fprintf(w, "  %-11s %s (unchanged)\n", name, now)
			return
		}
		fmt.Fprintf(w, "  %-11s %s (was %s)\n", name, now, was)
	}
	line("active", b.Active, a.Active)
	line("rw", endpointsText(b.RW), endpointsText(a.RW))
	line("ro", endpointsText(b.RO), endpointsText(a.RO))
	line("passive-rw", endpointsText(b.PassiveRW), endpointsText(a.PassiveRW))
	line("passive-ro", endpointsText(b.PassiveRO), endpointsText(a.PassiveRO))
	fmt.Fprintf(w, "  why: %s\n", after.Reason)
	switch p := after.Pin; {
	case p == nil:
	case p.Applied:
		fmt.Fprintf(w, "  pin: applied: %s\n", p.Why)
	default:
		fmt.Fprintf(w, "  pin: IGNORED (%s): %s\n", p.Ignored, p.Why)
	}
	if len(after.Drained) > 0 {
		fmt.Fprintf(w, "  drained: %s\n", strings.Join(after.Drained, ", "))
	}
	if len(after.DrainNotApplied) > 0 {
		fmt.Fprintf(w, "  NOT drained, leading a region (a switchover is Patroni's job): %s\n", strings.Join(after.DrainNotApplied, ", "))
	}
}

// keysState prints the control keys as Consul holds them, read as the
// server reads them, checked against the zone file.
func (c *ctl) keysState(label string) error {
	pairs, region, err := c.readKeys()
	if err != nil {
		return err
	}
	prefix := c.cfg.ControlKeyPrefix()
	fmt.Fprintf(c.out, "control keys under %s/ in region %s (without --server: the keys only, not what the server decided)\n", prefix, region.Name)
	regions := map[string]bool{}
	for _, r := range c.cfg.Regions {
		regions[r.Name] = true
	}
	n := 0
	for _, p := range pairs {
		rest, ok := strings.CutPrefix(p.Key, prefix+"/")
		if !ok || strings.HasSuffix(p.Key, "/") {
			continue
		}
		kind, after, _ := strings.Cut(rest, "/")
		cluster, member, _ := strings.Cut(after, "/")
		if label != "" && cluster != label {
			continue
		}
		n++
		_, err := c.cluster(cluster)
		switch {
		case err != nil:
			fmt.Fprintf(c.out, "  %s: applies to no cluster: %v\n", p.Key, err)
		case kind == "pin" && member == "":
			pin := policy.ParsePin(p.Value)
			switch {
			case pin.Invalid != "":
				fmt.Fprintf(c.out, "  pin of %s: invalid: %s\n", cluster, pin.Invalid)
			case !regions[pin.Active]:
				fmt.Fprintf(c.out, "  pin of %s: to unknown region %q\n", cluster, pin.Active)
			case !c.now().Before(pin.Expires):
				fmt.Fprintf(c.out, "  pin of %s: to region %s, expired at %s\n", cluster, pin.Active, pin.Expires.Format(time.RFC3339))
			default:
				fmt.Fprintf(c.out, "  pin of %s: to region %s until %s%s\n", cluster, pin.Active, pin.Expires.Format(time.RFC3339), parenthesized(pin.Reason))
			}
		case kind == "drain" && member != "":
			d := policy.ParseDrain(member, p.Value)
			fmt.Fprintf(c.out, "  drain of %s member %s%s\n", cluster, d.Member, parenthesized(d.Reason))
		default:
			fmt.Fprintf(c.out, "  %s: neither %s nor %s\n", p.Key, watch.PinKey(prefix, "<cluster>"), watch.DrainKey(prefix, "<cluster>", "<member>"))
		}
	}
	if n == 0 {
		fmt.Fprintln(c.out, "  none")
	}
	return nil
}

// parenthesized returns " (s)", or "" for an empty s.
func parenthesized(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}
