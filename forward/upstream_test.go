package forward

import (
	"fmt"
	"testing"

	"github.com/miekg/dns"
)

// TestSetUpstreamsKeepsHealthAndStats: a reload replaces the upstreams in
// place; an address that stays keeps its counters and its health wherever
// it moves, a new one starts afresh, a removed one is no longer reported.
func TestSetUpstreamsKeepsHealthAndStats(t *testing.T) {
	dead := closedAddr(t)
	live := startUpstream(t, answerA(0, "10.0.0.1"))
	gone := startUpstream(t, answerA(0, "10.0.0.2"))
	added := startUpstream(t, answerA(0, "10.0.0.3"))
	f := forwarder(nil, []string{dead}, []string{live.addr, gone.addr})
	for i := range downAfter {
		mustAsk(t, f, fmt.Sprintf("n%d.consul.", i), dns.TypeA)
	}
	before := map[string]UpstreamStats{}
	for _, st := range f.Stats() {
		before[st.Addr] = st
	}
	if st := before[dead]; st.Requests != downAfter || st.Errors != downAfter {
		t.Fatalf("dead upstream before the reload: %+v, want %d failed requests", st, downAfter)
	}

	f.SetUpstreams([][]string{{added.addr}, {live.addr, dead}})
	st := f.Stats()
	if len(st) != 3 || st[0].Addr != added.addr || st[1].Addr != live.addr || st[2].Addr != dead {
		t.Fatalf("stats after the reload: %+v, want %s, %s, %s in that order", st, added.addr, live.addr, dead)
	}
	if st[0].Requests != 0 || st[1] != before[live.addr] || st[2] != before[dead] {
		t.Errorf("stats after the reload: %+v; want the new upstream at zero, the others as before: %+v", st, before)
	}
	// The dead upstream is still down: only the new one is asked.
	f.SetUpstreams([][]string{{dead, added.addr}})
	mustAsk(t, f, "after.consul.", dns.TypeA)
	if st := f.Stats(); st[0].Requests != downAfter || st[1].Requests != 1 {
		t.Errorf("after the reload, a query tried %+v; want the down upstream skipped", st)
	}
	if gone.queries() != 0 {
		t.Errorf("removed upstream asked %d times", gone.queries())
	}
}

// TestSetUpstreamsDuplicate: an address given twice is one upstream, tried
// (and reported) once, where it first appears.
func TestSetUpstreamsDuplicate(t *testing.T) {
	up := startUpstream(t, answerA(0, "10.0.0.1"))
	f := forwarder(nil, []string{up.addr}, []string{up.addr})
	if st := f.Stats(); len(st) != 1 || st[0].Addr != up.addr {
		t.Errorf("stats %+v, want %s once", st, up.addr)
	}
}
