package engine

import (
	"fmt"
	"strings"

	"github.com/regiondns/regiondns/policy"
)

// change is a cluster a rebuild decided again, and its decision before.
type change struct {
	label  string
	before policy.Decision
	had    bool // there was a decision before
}

// reportLocked tells the Observer of a cluster decided again and, once
// every region was read, logs what changed; e.mu must be held.
func (e *Engine) reportLocked(c change, ready bool) {
	after := e.decisions[c.label]
	e.observer.Decided(e.cfg, c.label, after)
	switch {
	case !ready:
		return
	case !e.logged || !c.had:
		e.logger.Info("decision", "cluster", c.label, "answers", summary(after), "why", after.Reason)
		return
	}
	if b, a := summary(c.before), summary(after); b != a {
		e.observer.Changed(c.label)
		e.logger.Info("decision changed", "cluster", c.label, "before", b, "after", a, "why", after.Reason)
	}
	if after.SplitBrain && !c.before.SplitBrain {
		e.logger.Warn("split brain: both regions have a leader", "cluster", c.label,
			"active", after.Active, "why", after.Reason)
	}
}

// summary is the part of a decision whose change is worth a log line.
func summary(d policy.Decision) string {
	var b strings.Builder
	fmt.Fprintf(&b, "active=%s rw=%s ro=%s passive-rw=%s passive-ro=%s split_brain=%t sync=%s",
		d.Active, endpoints(d.RW), endpoints(d.RO), endpoints(d.PassiveRW), endpoints(d.PassiveRO), d.SplitBrain, endpoints(d.Sync))
	return b.String()
}

func endpoints(eps []policy.Endpoint) string {
	parts := make([]string, len(eps))
	for i, ep := range eps {
		name := ep.Member
		if name == "" {
			name = ep.Node
		}
		parts[i] = fmt.Sprintf("%s@%s:%d", name, ep.Address, ep.Port)
	}
	return "[" + strings.Join(parts, ",") + "]"
}
