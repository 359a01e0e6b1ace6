package policy

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Operator control: a pin of a cluster's active region, and drained
// members, written under the zone file's control prefix in Consul KV (see
// README.md, "Operator control"). Every instance reads the same keys and
// applies the same rules, so every instance answers alike. The rules that
// no pin can break: rw never answers a region without a primary while the
// other region has one, an expired pin is ignored, a pin naming a region
// that does not exist is ignored; a drain never touches a leader.

// MaxReasonBytes bounds the operator's reason kept from a pin or drain key:
// the reason is shown in TXT records, /debug/state and logs, and the key's
// value comes from Consul, where anyone with write access can make it big.
const MaxReasonBytes = 200

// Control is what the operator set for one cluster under the control
// prefix, as one read of Consul KV delivered it.
type Control struct {
	// Pin is the cluster's pin key, nil without one.
	Pin *Pin `json:"pin,omitempty"`
	// Drains are the cluster's drain keys, sorted by member.
	Drains []Drain `json:"drains,omitempty"`
	// ReadAt is when the read that delivered Pin and Drains answered (while
	// no region's control prefix can be read: when the last read failed).
	// A pin is valid while ReadAt is before its expiry: the policy reads no
	// clock, so that two instances that read the same keys at the same
	// time decide alike.
	ReadAt time.Time `json:"read_at,omitzero"`
	// Source is the region whose Consul KV the keys came from: the main
	// region's, or the standby region's while the main one cannot be read.
	Source string `json:"source,omitempty"`
	// Stale is true while no region's control prefix can be read: the keys
	// are the last known.
	Stale bool `json:"stale,omitempty"`
}

// Drained reports whether the operator drained member. Every read name of
// a region draws from the region's passing replicas, from which Decide
// takes the drained members out (a leader excepted); a name that picks
// members from anywhere else must ask Drained too.
func (c *Control) Drained(member string) bool {
	return slices.ContainsFunc(c.Drains, func(d Drain) bool { return d.Member == member })
}

// Pin is the value of a pin key: the region to make active, why, and until
// when. It is also the JSON that regiondns ctl writes.
type Pin struct {
	// Active is the name of the region to make active.
	Active string `json:"active"`
	// Reason is the operator's reason, cut to MaxReasonBytes.
	Reason string `json:"reason,omitempty"`
	// Expires is when the pin stops applying (RFC 3339 in the key).
	Expires time.Time `json:"expires"`
	// Invalid says why the key's value is not a pin; such a pin is
	// ignored. Never written to a key.
	Invalid string `json:"invalid,omitempty"`
}

// ParsePin reads a pin key's value: a JSON object with "active" (a region
// name), "reason" (optional) and "expires" (an RFC 3339 time, required: a
// pin nobody remembers must not hold forever). A value that is none of
// that comes back with Invalid set.
func ParsePin(value []byte) Pin {
	var raw struct {
		Active  string `json:"active"`
		Reason  string `json:"reason"`
		Expires string `json:"expires"`
	}
	if err := json.Unmarshal(value, &raw); err != nil {
		return Pin{Invalid: `not a JSON object {"active": region, "reason": text, "expires": RFC 3339 time}`}
	}
	p := Pin{Active: cutReason(raw.Active), Reason: cutReason(raw.Reason)}
	switch {
	case raw.Active == "":
		p.Invalid = "active: missing; want a region name"
	case raw.Expires == "":
		p.Invalid = "expires: missing; want an RFC 3339 time, such as 2030-01-02T15:04:05Z"
	default:
		t, err := time.Parse(time.RFC3339, raw.Expires)
		if err != nil {
			p.Invalid = fmt.Sprintf("expires: %q is not valid; want an RFC 3339 time, such as 2030-01-02T15:04:05Z", cutReason(raw.Expires))
			break
		}
		p.Expires = t.UTC()
	}
	return p
}

// Drain is a drain key: the member to take out of the read names, and why.
type Drain struct {
	Member string `json:"member"`
	// Reason is the operator's reason, cut to MaxReasonBytes.
	Reason string `json:"reason,omitempty"`
}

// ParseDrain reads the drain key of member. Any value drains: a JSON
// object's "reason" is the reason, any other value is taken as the reason
// itself.
func ParseDrain(member string, value []byte) Drain {
	d := Drain{Member: member}
	var raw map[string]json.RawMessage
	if json.Unmarshal(value, &raw) == nil {
		var reason string
		if json.Unmarshal(raw["reason"], &reason) == nil {
			d.Reason = cutReason(reason)
		}
		return d
	}
	d.Reason = cutReason(strings.TrimSpace(string(value)))
	return d
}

// cutReason cuts s to MaxReasonBytes, on a character boundary.
func cutReason(s string) string {
	if len(s) <= MaxReasonBytes {
		return s
	}
	s = s[:MaxReasonBytes]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// PinIgnored says why a pin does not apply.
type PinIgnored string

// Why a pin can be ignored.
const (
	// PinInvalid: the key's value is not a pin.
	PinInvalid PinIgnored = "invalid"
	// PinUnknownRegion: the pin names no region of the zone file.
	PinUnknownRegion PinIgnored = "unknown_region"
	// PinExpired: the read that delivered it came at or after its expiry.
	PinExpired PinIgnored = "expired"
	// PinUnsafe: the pinned region has no primary and the other one has.
	PinUnsafe PinIgnored = "unsafe"
)

// PinIgnoredReasons lists every PinIgnored, for metrics labels.
var PinIgnoredReasons = []PinIgnored{PinInvalid, PinUnknownRegion, PinExpired, PinUnsafe}

// PinState is what became of a cluster's pin.
type PinState struct {
	// Region, Reason and Expires are the pin's.
	Region  string    `json:"region"`
	Reason  string    `json:"reason,omitempty"`
	Expires time.Time `json:"expires,omitzero"`
	// Applied is true when the pin chose the active region.
	Applied bool `json:"applied"`
	// Ignored says why it did not; empty when it did.
	Ignored PinIgnored `json:"ignored,omitempty"`
	// Why is one line for people: pinned until when and why, or why not.
	Why string `json:"why"`
}

// applyPin applies c's pin, if any, to the choice chooseActive made. A
// valid pin makes its region active, unless that region has no primary
// while the other one has: rw must never go to a region that cannot take
// writes when one that can exists. A pin to a region without a primary
// when neither has one applies, and rw answers nothing (as it would
// anyway). Anything else leaves the choice as it was, and says why.
func applyPin(c *Control, main, standby, active, passive *reading, reason string) (*reading, *reading, string, *PinState) {
	pin := c.Pin
	if pin == nil {
		return active, passive, reason, nil
	}
	st := &PinState{Region: pin.Active, Reason: pin.Reason, Expires: pin.Expires}
	var target, other *reading
	switch pin.Active {
	case main.view.Name:
		target, other = main, standby
	case standby.view.Name:
		target, other = standby, main
	}
	switch {
	case pin.Invalid != "":
		st.Ignored, st.Why = PinInvalid, "pin ignored: "+pin.Invalid
	case target == nil:
		st.Ignored = PinUnknownRegion
		st.Why = fmt.Sprintf("pin ignored: region %q is unknown; want %s or %s", pin.Active, main.view.Name, standby.view.Name)
	case !c.ReadAt.Before(pin.Expires):
		st.Ignored = PinExpired
		st.Why = fmt.Sprintf("pin to region %s ignored: expired at %s", pin.Active, pin.Expires.Format(time.RFC3339))
	case !target.hasPrimary() && other.hasPrimary():
		st.Ignored = PinUnsafe
		st.Why = fmt.Sprintf("pin to region %s ignored as unsafe: it has no primary and region %s has one", pin.Active, other.view.Name)
	default:
		st.Applied = true
		st.Why = fmt.Sprintf("pinned to region %s until %s", pin.Active, pin.Expires.Format(time.RFC3339))
		if pin.Reason != "" {
			st.Why += " (" + pin.Reason + ")"
		}
		return target, other, st.Why + "; the rules alone: " + reason, st
	}
	return active, passive, reason + "; " + st.Why, st
}

// drainRegions takes c's drained members out of both regions' replicas,
// from which every read name draws. It returns the passing replicas it took
// out, and the drained members it left, because a region answers them as
// its leader: draining a leader is a switchover, Patroni's job.
func drainRegions(c *Control, regions ...*reading) (drained, notApplied []string) {
	if len(c.Drains) == 0 {
		return nil, nil
	}
	for _, r := range regions {
		if r.leader != nil && c.Drained(r.leader.Member) {
			notApplied = append(notApplied, r.leader.Member)
		}
		kept := r.replicas[:0]
		for _, m := range r.replicas {
			if c.Drained(m.Member) {
				drained = append(drained, m.Member)
				continue
			}
			kept = append(kept, m)
		}
		r.replicas = kept
	}
	slices.Sort(drained)
	slices.Sort(notApplied)
	return slices.Compact(drained), slices.Compact(notApplied)
}
