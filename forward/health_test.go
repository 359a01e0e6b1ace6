package forward

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// slowNames answers like answerA(0, addr), except that it never answers
// a name that starts with "slow": names Consul DNS takes longer than a try
// to answer, while it answers every other one at once.
func slowNames(addr string) answerFunc {
	fast := answerA(0, addr)
	return func(req *dns.Msg, tcp bool) *dns.Msg {
		if strings.HasPrefix(req.Question[0].Name, "slow") {
			return nil
		}
		return fast(req, tcp)
	}
}

// switchable answers like answerA(0, addr) while alive holds true, and
// never otherwise: an agent that dies and comes back.
func switchable(addr string, alive *atomic.Bool) answerFunc {
	fast := answerA(0, addr)
	return func(req *dns.Msg, tcp bool) *dns.Msg {
		if !alive.Load() {
			return nil
		}
		return fast(req, tcp)
	}
}

// probes returns how many health probes u received.
func (u *fakeUpstream) probes() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, m := range u.received {
		if q := m.Question[0]; q.Qtype == dns.TypeSOA && q.Name == DefaultProbeName {
			n++
		}
	}
	return n
}

// received counts the queries u received for names with prefix.
func (u *fakeUpstream) receivedWith(prefix string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, m := range u.received {
		if strings.HasPrefix(m.Question[0].Name, prefix) {
			n++
		}
	}
	return n
}

// healthForwarder returns a forwarder without cache to groups, with a
// per-try timeout of timeout, its health on clock (frozen unless the
// test moves it: an upstream marked down stays down until its probe
// answers), logging into a buffer.
func healthForwarder(clock *testClock, timeout time.Duration, groups ...[]string) (*Forwarder, *logBuffer) {
	logs := &logBuffer{}
	f := New(Options{Groups: groups, Timeout: timeout}, nil, slog.New(slog.NewTextHandler(logs, nil)))
	f.now = clock.Now
	return f, logs
}

// logBuffer is an io.Writer safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the lines logged with msg=msg.
func (b *logBuffer) lines(msg string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, l := range strings.Split(b.buf.String(), "\n") {
		if strings.Contains(l, fmt.Sprintf("msg=%q", msg)) || strings.Contains(l, "msg="+msg+" ") {
			out = append(out, l)
		}
	}
	return out
}

// answeredBy returns the address in m's single A record.
func answeredBy(t *testing.T, m *dns.Msg) string {
	t.Helper()
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
		t.Fatalf("answer: %v", m)
	}
	return m.Answer[0].(*dns.A).A.String()
}

// TestHealthTimeoutsWhileAnsweringOthers: names that time out at an
// upstream while it answers other names do not count against it, however
// many time out at once: it is neither skipped nor probed.
func TestHealthTimeoutsWhileAnsweringOthers(t *testing.T) {
	local := startUpstream(t, slowNames("10.0.0.1"))
	other := startUpstream(t, answerA(0, "10.0.0.2"))
	f, logs := healthForwarder(newTestClock(), 300*time.Millisecond, []string{local.addr}, []string{other.addr})

	const slow = 4
	var wg sync.WaitGroup
	for i := range slow {
		wg.Go(func() { mustAsk(t, f, fmt.Sprintf("slow%d.service.consul.", i), dns.TypeA) })
	}
	eventually(t, "the slow queries to reach the local upstream", func() bool { return local.receivedWith("slow") == slow })
	if got := answeredBy(t, mustAsk(t, f, "web.service.consul.", dns.TypeA)); got != "10.0.0.1" {
		t.Fatalf("answered by %s while the slow names wait, want the local upstream", got)
	}
	wg.Wait() // the slow names timed out at the local upstream

	if got := answeredBy(t, mustAsk(t, f, "db.service.consul.", dns.TypeA)); got != "10.0.0.1" {
		t.Errorf("after %d names timed out at a live upstream, answered by %s; want the local upstream", slow, got)
	}
	if n := local.probes(); n != 0 {
		t.Errorf("the local upstream was probed %d times, want none: it answered while the names timed out", n)
	}
	if st := f.Stats(); !st[0].Up {
		t.Errorf("local upstream reported down: %+v", st[0])
	}
	if l := logs.lines("upstream down"); len(l) != 0 {
		t.Errorf("logged %q", l)
	}
}

// TestHealthProbeClearsSilentNames: names that time out with no other
// traffic make the upstream suspect, but its probe answers: it is back in
// the rotation at once, never reported or logged down.
func TestHealthProbeClearsSilentNames(t *testing.T) {
	local := startUpstream(t, slowNames("10.0.0.1"))
	other := startUpstream(t, answerA(0, "10.0.0.2"))
	f, logs := healthForwarder(newTestClock(), 200*time.Millisecond, []string{local.addr}, []string{other.addr})

	for i := range downAfter {
		if got := answeredBy(t, mustAsk(t, f, fmt.Sprintf("slow%d.service.consul.", i), dns.TypeA)); got != "10.0.0.2" {
			t.Fatalf("slow name answered by %s, want the other region", got)
		}
	}
	eventually(t, "the probe of the local upstream", func() bool { return local.probes() == 1 })
	eventually(t, "the local upstream to answer again", func() bool {
		m, err := ask(t, f, "web.service.consul.", dns.TypeA)
		return err == nil && len(m.Answer) == 1 && m.Answer[0].(*dns.A).A.String() == "10.0.0.1"
	})
	if st := f.Stats()[0]; !st.Up || st.Requests != uint64(local.queries()-local.probes()) {
		t.Errorf("local upstream: %+v, %d queries received; want it up, its probe not counted", st, local.queries())
	}
	if l := logs.lines("upstream down"); len(l) != 0 {
		t.Errorf("logged %q", l)
	}
}

// TestHealthDeadUpstream: an upstream that answers nothing is marked down
// once its probe gets no answer (logged, reported), skipped until its
// backoff is over, and back once a probe is answered.
func TestHealthDeadUpstream(t *testing.T) {
	var alive atomic.Bool
	local := startUpstream(t, switchable("10.0.0.1", &alive))
	other := startUpstream(t, answerA(0, "10.0.0.2"))
	clock := newTestClock()
	f, logs := healthForwarder(clock, 100*time.Millisecond, []string{local.addr}, []string{other.addr})

	for i := range downAfter {
		mustAsk(t, f, fmt.Sprintf("n%d.service.consul.", i), dns.TypeA)
	}
	eventually(t, "the local upstream to be reported down", func() bool { return !f.Stats()[0].Up })
	if l := logs.lines("upstream down"); len(l) != 1 {
		t.Errorf("down lines %q, want one", l)
	}
	asked := local.queries()
	for i := range 5 {
		if got := answeredBy(t, mustAsk(t, f, fmt.Sprintf("m%d.service.consul.", i), dns.TypeA)); got != "10.0.0.2" {
			t.Errorf("answered by %s while the local upstream is down", got)
		}
	}
	if local.queries() != asked {
		t.Errorf("a down upstream was asked %d queries before its backoff was over", local.queries()-asked)
	}
	if st := f.Stats()[0]; st.Requests != downAfter {
		t.Errorf("local upstream counted %d requests, want %d: probes are not counted", st.Requests, downAfter)
	}

	alive.Store(true)
	clock.Advance(backoffMax)
	mustAsk(t, f, "after.service.consul.", dns.TypeA) // starts the probe
	eventually(t, "the local upstream to be back", func() bool {
		m, err := ask(t, f, "web.service.consul.", dns.TypeA)
		return err == nil && len(m.Answer) == 1 && m.Answer[0].(*dns.A).A.String() == "10.0.0.1"
	})
	if !f.Stats()[0].Up {
		t.Error("local upstream still reported down")
	}
	if l := logs.lines("upstream up"); len(l) != 1 {
		t.Errorf("up lines %q, want one", l)
	}
}

// TestHealthTransitionLogRateLimited: a flapping upstream logs one down or
// up line per 30 s; the next line counts the transitions left out.
func TestHealthTransitionLogRateLimited(t *testing.T) {
	var alive atomic.Bool
	local := startUpstream(t, switchable("10.0.0.1", &alive))
	other := startUpstream(t, answerA(0, "10.0.0.2"))
	clock := newTestClock()
	f, logs := healthForwarder(clock, 100*time.Millisecond, []string{local.addr}, []string{other.addr})

	name := 0
	ask := func() {
		name++
		mustAsk(t, f, fmt.Sprintf("n%d.service.consul.", name), dns.TypeA)
	}
	down := func() {
		alive.Store(false)
		for range downAfter {
			ask()
		}
		eventually(t, "the upstream to be down", func() bool { return !f.Stats()[0].Up })
	}
	up := func() {
		alive.Store(true)
		// The backoff is over: the next query probes. On a loaded machine
		// more than downAfter failures may have been counted, so the wait
		// is the upstream's own.
		u := (*f.groups.Load())[0][0]
		clock.Advance(max(time.Unix(0, u.downUntil.Load()).Sub(clock.Now()), 0) + time.Millisecond)
		// A query starts a probe unless the last one is still finishing:
		// ask until one has brought the upstream back.
		eventually(t, "the upstream to be up", func() bool {
			ask()
			return f.Stats()[0].Up
		})
	}
	start := clock.Now()
	down() // the first line
	const flaps = 4
	for range flaps {
		up()
		down()
	}
	if d := clock.Now().Sub(start); d >= transitionLogEvery {
		t.Fatalf("the flaps took %v of the clock, want less than %v", d, transitionLogEvery)
	}
	if l := append(logs.lines("upstream down"), logs.lines("upstream up")...); len(l) != 1 {
		t.Errorf("%d down/up lines for %d transitions within %v, want 1: %q", len(l), 1+2*flaps, transitionLogEvery, l)
	}
	clock.Advance(transitionLogEvery)
	up()
	// The line follows the transition that Stats shows: wait for it.
	var l []string
	eventually(t, "the up line", func() bool { l = logs.lines("upstream up"); return len(l) > 0 })
	if len(l) != 1 || !strings.Contains(l[0], fmt.Sprintf("transitions_not_logged=%d", 2*flaps)) {
		t.Errorf("up lines %q, want one counting the %d transitions left out", l, 2*flaps)
	}
}
