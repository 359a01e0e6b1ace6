package engine

import (
	"time"

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
	if ready {
		// Until the first decisions after every region was read are
		// logged, every pin is news.
		before := c.before
		if !e.logged || !c.had {
			before = policy.Decision{}
		}
		e.reportControlLocked(c.label, before, after)
	}
	switch {
	case !ready:
		return
	case !e.logged || !c.had:
		e.logger.Info("decision", "cluster", c.label, "answers", AnswersOf(after).String(), "why", after.Reason)
		return
	}
	if b, a := AnswersOf(c.before), AnswersOf(after); !b.Equal(a) {
		e.observer.Changed(c.label)
		e.recordLocked(c.label, b, a, after.Reason, time.Now())
		e.logger.Info("decision changed", "cluster", c.label, "before", b.String(), "after", a.String(), "why", after.Reason)
	}
	if after.SplitBrain && !c.before.SplitBrain {
		e.logger.Warn("split brain: both regions have a leader", "cluster", c.label,
			"active", after.Active, "why", after.Reason)
	}
}
