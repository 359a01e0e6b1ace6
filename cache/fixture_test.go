package cache

import (
	"testing"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/internal/testzone"
)

// zone is the apex of the shared test zone (internal/testzone).
const zone = testzone.Zone

func testSnapshot(tb testing.TB) *Snapshot {
	tb.Helper()
	return Build(testzone.Config(), testzone.Decisions(), 7)
}

// rrStrings returns the presentation format of rrs.
func rrStrings(rrs []dns.RR) []string {
	out := make([]string, len(rrs))
	for i, rr := range rrs {
		out[i] = rr.String()
	}
	return out
}
