package zones

import (
	"strings"
	"testing"
)

// The wanted names are what Patroni's service_name_from_scope_name returns
// for the same scope.
func TestServiceName(t *testing.T) {
	for _, tc := range []struct {
		name, scope, want string
	}{
		{name: "already a service name", scope: "orders", want: "orders"},
		{name: "dot, underscore and space become hyphens", scope: "orders.main_db x", want: "orders-main-db-x"},
		{name: "upper case is lowered first", scope: "Orders.Main_DB X", want: "orders-main-db-x"},
		{name: "hyphens stay, at the ends too", scope: "-Orders-EU-", want: "-orders-eu-"},
		{name: "plus becomes its code point", scope: "orders+eu", want: "ordersu0043eu"},
		{name: "code point below 1000 padded to four digits", scope: "zürich", want: "zu0252rich"},
		{name: "NUL padded to four digits", scope: "a\x00b", want: "au0000b"},
		{name: "code points above 9999 in full", scope: "orders😀", want: "ordersu128512"},
		{name: "CJK", scope: "日本", want: "u26085u26412"},
		{name: "upper-case letter lowered before its code point is taken", scope: "ZÜRICH", want: "zu0252rich"},
		{name: "dotted capital I lowers to i and a combining dot", scope: "İzmir", want: "iu0775zmir"},
		{name: "capital sigma ending a word lowers to final sigma", scope: "ΟΔΟΣ", want: "u0959u0948u0959u0962"},
		{name: "capital sigma before punctuation ending the scope", scope: "ΟΔΟΣ.", want: "u0959u0948u0959u0962-"},
		{name: "capital sigma starting a word lowers to sigma", scope: "ΣΑ", want: "u0963u0945"},
		{name: "300 characters cut at 230", scope: strings.Repeat("x", 300), want: strings.Repeat("x", 230)},
		{name: "cut inside a replacement", scope: strings.Repeat("x", 229) + "é", want: strings.Repeat("x", 229) + "u"},
		{name: "upper case, 300 characters", scope: strings.Repeat("AB", 150), want: strings.Repeat("ab", 115)},
		{name: "empty", scope: "", want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ServiceName(tc.scope); got != tc.want {
				t.Errorf("ServiceName(%q) = %q, want %q", tc.scope, got, tc.want)
			}
		})
	}
}

// ServiceName runs for every cluster of every configuration; a scope that
// needs no change costs no allocation.
func TestServiceNameAllocs(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { ServiceName("orders") }); n != 0 {
		t.Errorf("ServiceName(orders) allocates %v times, want 0", n)
	}
}
