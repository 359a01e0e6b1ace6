package forward

import (
	"fmt"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"
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

// An upstream is up until downAfter tries in a row fail and its health
// probe gets no answer; its peer that answers stays up. The collector reports it as regiondns_upstream_up.
func TestForwardUpstreamUp(t *testing.T) {
	dead, live := closedAddr(t), startUpstream(t, answerA(30, "10.0.0.1")).addr
	f := forwarder(newTestClock(), []string{dead}, []string{live})
	wantUp := func(want map[string]bool) {
		t.Helper()
		for _, st := range f.Stats() {
			if st.Up != want[st.Addr] {
				t.Errorf("%s: up %t, want %t (%d requests, %d errors)", st.Addr, st.Up, want[st.Addr], st.Requests, st.Errors)
			}
		}
	}
	wantUp(map[string]bool{dead: true, live: true})
	for i := range downAfter {
		mustAsk(t, f, fmt.Sprintf("n%d.service.consul.", i), dns.TypeA)
		if i < downAfter-1 {
			wantUp(map[string]bool{dead: true, live: true})
		}
	}
	// The dead upstream is suspect now; its health probe gets no answer.
	eventually(t, "the dead upstream to be reported down", func() bool { return !f.Stats()[0].Up })
	wantUp(map[string]bool{dead: false, live: true})

	want := fmt.Sprintf(`
# HELP regiondns_upstream_up 1 while a Consul DNS upstream answers, 0 while it is marked down (its health probe got no answer).
# TYPE regiondns_upstream_up gauge
regiondns_upstream_up{upstream=%q} 0
regiondns_upstream_up{upstream=%q} 1
`, dead, live)
	if err := testutil.CollectAndCompare(NewCollector(f), strings.NewReader(want), "regiondns_upstream_up"); err != nil {
		t.Error(err)
	}
}
