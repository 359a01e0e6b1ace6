package forward

import (
	"testing"

	"github.com/miekg/dns"
)

func TestForwardUpstreamStats(t *testing.T) {
	dead, live := closedAddr(t), startUpstream(t, answerA(30, "10.0.0.1")).addr
	f := forwarder(newTestClock(), []string{dead, live})
	mustAsk(t, f, "web.service.consul.", dns.TypeA)

	st := f.Stats()
	if len(st) != 2 || st[0].Addr != dead || st[1].Addr != live {
		t.Fatalf("stats = %+v, want the two upstreams in configuration order", st)
	}
	for i, want := range []struct{ requests, errors uint64 }{{1, 1}, {1, 0}} {
		if st[i].Requests != want.requests || st[i].Errors != want.errors {
			t.Errorf("%s: %d requests, %d errors; want %d and %d", st[i].Addr, st[i].Requests, st[i].Errors, want.requests, want.errors)
		}
		var n uint64
		for _, b := range st[i].Buckets {
			n += b
		}
		// Buckets has len(UpstreamBuckets)+1 elements by its type.
		if n != st[i].Requests {
			t.Errorf("%s: buckets %v count %d tries, want %d", st[i].Addr, st[i].Buckets, n, st[i].Requests)
		}
	}
	// A cache hit asks no upstream.
	mustAsk(t, f, "web.service.consul.", dns.TypeA)
	if got := f.Stats()[1].Requests; got != 1 {
		t.Errorf("live upstream requests after a cache hit = %d, want 1", got)
	}
}
