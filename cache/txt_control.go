package cache

import "github.com/regiondns/regiondns/policy"

// appendDrainText appends what the operator's drains did: the members left
// out of the read names and the leaders a drain was not applied to. (A pin
// is in the decision's reason.) For example:
//
//	; drained pg-2, pg-3; drain not applied to the leader pg-1
func appendDrainText(b []byte, d *policy.Decision) []byte {
	if len(d.Drained) > 0 {
		b = append(b, "; drained "...)
		b = appendList(b, d.Drained)
	}
	if len(d.DrainNotApplied) > 0 {
		b = append(b, "; drain not applied to the leader "...)
		b = appendList(b, d.DrainNotApplied)
	}
	return b
}

func appendList(b []byte, items []string) []byte {
	for i, s := range items {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, s...)
	}
	return b
}
