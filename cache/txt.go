package cache

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/regiondns/regiondns/policy"
)

// maxTXTString is the longest character-string a TXT record can carry.
const maxTXTString = 255

// appendDecisionText appends the one line the TXT record of a name shows:
// the region it answers from and that region's state, the endpoints, the
// replicas its region left out of reads (read names only) and why the
// name answers what it does (sync), why the region is the one it is,
// whether both regions have a leader, and whether the data is fresh. For
// example:
//
//	rw: region main (primary, leader pg-1, timeline 3); endpoints pg-1 10.0.0.1:5432; main region is primary; fresh
//	ro: region main (primary, leader pg-1); endpoints pg-2 10.0.0.2:5432; left out pg-3 lag 48 MB > 16 MB, pg-4 noloadbalance; main region is primary; fresh
func appendDecisionText(b []byte, k *kind, d *policy.Decision) []byte {
	view, eps := k.view, k.eps
	b = append(b, k.label...)
	b = append(b, ": region "...)
	b = append(b, view.Name...)
	b = append(b, " ("...)
	b = append(b, view.State...)
	if view.Leader != "" {
		b = append(b, ", leader "...)
		b = append(b, view.Leader...)
	}
	if view.Timeline > 0 {
		b = append(b, ", timeline "...)
		b = strconv.AppendInt(b, view.Timeline, 10)
	}
	b = append(b, "); "...)

	if len(eps) == 0 {
		b = append(b, "no endpoints"...)
	} else {
		b = append(b, "endpoints "...)
		for i, ep := range eps {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = append(b, ep.Target...)
			b = append(b, ' ')
			b = appendAddrPort(b, netip.AddrPortFrom(ep.Address.Unmap(), ep.Port))
		}
	}
	if k.excluded && len(view.Excluded) > 0 {
		b = append(b, "; left out "...)
		for i, e := range view.Excluded {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = append(b, e.Member...)
			b = append(b, ' ')
			b = append(b, e.Why...)
		}
	}
	if k.why != "" {
		b = append(b, "; "...)
		b = append(b, k.why...)
	}
	if d.Reason != "" {
		b = append(b, "; "...)
		b = append(b, d.Reason...)
	}
	// The policy's reason names a split brain itself; say it once.
	if d.SplitBrain && !strings.Contains(d.Reason, "split brain") {
		b = append(b, "; split brain"...)
	}
	b = appendDrainText(b, d)
	b = append(b, "; "...)
	return appendStaleness(b, d)
}

// appendAddrPort appends p as p.String() writes it ("invalid AddrPort" for
// an endpoint without an address, which AppendTo writes as nothing).
func appendAddrPort(b []byte, p netip.AddrPort) []byte {
	if !p.Addr().IsValid() {
		return append(b, p.String()...)
	}
	return p.AppendTo(b)
}

// appendStaleness appends whether the decision rests on fresh data and, if
// not, which region's data is old or missing.
func appendStaleness(b []byte, d *policy.Decision) []byte {
	if !d.Stale {
		return append(b, "fresh"...)
	}
	b = append(b, "stale"...)
	parts := 0
	for _, v := range [...]*policy.RegionView{&d.Main, &d.Standby} {
		var what string
		switch {
		case v.State == policy.StateUnknown:
			what = " never read"
		case v.Stale:
			what = " last known data"
		default:
			continue
		}
		if parts == 0 {
			b = append(b, " ("...)
		} else {
			b = append(b, ", "...)
		}
		b = append(b, "region "...)
		b = append(b, v.Name...)
		b = append(b, what...)
		parts++
	}
	if parts > 0 {
		b = append(b, ')')
	}
	return b
}

// appendUnknownText appends the TXT line of a configured cluster the policy
// has not decided on yet.
func appendUnknownText(b []byte, label string) []byte {
	b = append(b, label...)
	return append(b, ": no decision yet; no endpoints; stale"...)
}
