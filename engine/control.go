package engine

import (
	"slices"
	"time"

	"github.com/regiondns/regiondns/policy"
)

// reportControlLocked logs what became of a cluster's pin and drains when
// it changed: a pin that applies (info), one that is ignored and why
// (warning: the operator asked for something that is not happening), one
// removed, and drains not applied to a leader (warning). e.mu must be held.
func (e *Engine) reportControlLocked(label string, before, after policy.Decision) {
	if pinStatus(before.Pin) != pinStatus(after.Pin) {
		switch p := after.Pin; {
		case p == nil:
			e.logger.Info("pin removed", "cluster", label, "why", after.Reason)
		case p.Applied:
			e.logger.Info("pin applied", "cluster", label, "region", p.Region,
				"expires", p.Expires.Format(time.RFC3339), "reason", p.Reason)
		default:
			e.logger.Warn("pin ignored", "cluster", label, "region", p.Region, "ignored", string(p.Ignored), "why", p.Why)
		}
	}
	if len(after.DrainNotApplied) > 0 && !slices.Equal(before.DrainNotApplied, after.DrainNotApplied) {
		e.logger.Warn("drain not applied to the leader: a switchover is Patroni's job", "cluster", label,
			"members", after.DrainNotApplied)
	}
}

// pinStatus names what a pin did, to tell when that changed.
func pinStatus(p *policy.PinState) string {
	switch {
	case p == nil:
		return ""
	case p.Applied:
		return "applied to " + p.Region + " until " + p.Expires.String()
	default:
		return "ignored: " + string(p.Ignored) + " " + p.Region
	}
}
