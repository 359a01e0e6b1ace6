package cache

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/regiondns/regiondns/policy"
)

// maxTXTString is the longest character-string a TXT record can carry.
const maxTXTString = 255

// decisionText is the one line the TXT record of a name shows: the region
// it answers from and that region's state, the endpoints, why, whether both
// regions have a leader, and whether the data is fresh. For example:
//
//	rw: region main (primary, leader pg-1, timeline 3); endpoints pg-1 10.0.0.1:5432; main region is primary; fresh
func decisionText(label string, d *policy.Decision, view *policy.RegionView, eps []policy.Endpoint) string {
	var b strings.Builder
	b.WriteString(label)
	b.WriteString(": region ")
	b.WriteString(view.Name)
	b.WriteString(" (")
	b.WriteString(string(view.State))
	if view.Leader != "" {
		b.WriteString(", leader ")
		b.WriteString(view.Leader)
	}
	if view.Timeline > 0 {
		b.WriteString(", timeline ")
		b.WriteString(strconv.FormatInt(view.Timeline, 10))
	}
	b.WriteString("); ")

	if len(eps) == 0 {
		b.WriteString("no endpoints")
	} else {
		b.WriteString("endpoints ")
		for i, ep := range eps {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(ep.Target)
			b.WriteByte(' ')
			b.WriteString(netip.AddrPortFrom(ep.Address.Unmap(), ep.Port).String())
		}
	}
	if d.Reason != "" {
		b.WriteString("; ")
		b.WriteString(d.Reason)
	}
	// The policy's reason names a split brain itself; say it once.
	if d.SplitBrain && !strings.Contains(d.Reason, "split brain") {
		b.WriteString("; split brain")
	}
	b.WriteString("; ")
	b.WriteString(staleness(d))
	return b.String()
}

// staleness says whether the decision rests on fresh data and, if not, which
// region's data is old or missing.
func staleness(d *policy.Decision) string {
	if !d.Stale {
		return "fresh"
	}
	var parts []string
	for _, v := range []*policy.RegionView{&d.Main, &d.Standby} {
		switch {
		case v.State == policy.StateUnknown:
			parts = append(parts, "region "+v.Name+" never read")
		case v.Stale:
			parts = append(parts, "region "+v.Name+" last known data")
		}
	}
	if len(parts) == 0 {
		return "stale"
	}
	return "stale (" + strings.Join(parts, ", ") + ")"
}

// unknownText is the TXT line of a configured cluster the policy has not
// decided on yet.
func unknownText(label string) string {
	return label + ": no decision yet; no endpoints; stale"
}

// splitTXT makes text safe for a TXT record and cuts it into strings of at
// most 255 bytes. miekg/dns reads backslashes in TXT strings as escapes, and
// the line is for humans: anything but printable ASCII becomes '?', so that
// one byte of text is one byte on the wire.
func splitTXT(text string) []string {
	clean := []byte(text)
	for i, c := range clean {
		if c < 0x20 || c > 0x7e || c == '\\' {
			clean[i] = '?'
		}
	}
	var out []string
	for len(clean) > maxTXTString {
		out = append(out, string(clean[:maxTXTString]))
		clean = clean[maxTXTString:]
	}
	return append(out, string(clean))
}
