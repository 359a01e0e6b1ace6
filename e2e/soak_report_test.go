package e2e

// The soak's instrument: every soakInterval it reads regiondns's resident
// memory, goroutines and open file descriptors and every class's counts,
// prints a row to the test log and the report file, and at the end judges
// the rows.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// soakSample is one row of the report: the process at the end of a window
// and what every class did in it. A figure that could not be read is -1
// and its reason is in Errs.
type soakSample struct {
	At                         time.Duration
	RSS, Goroutines, FDs       int64
	LogLines, Dropped, RcvbufE int64
	Counts                     []soakCount
	Errs                       []string
	// Notes are what the row should say that is not an error.
	Notes []string
}

// soakReport writes the rows and events to the test log and a file.
type soakReport struct {
	t       *testing.T
	start   time.Time
	classes []*soakClass

	mu  sync.Mutex // guards out
	out io.WriteCloser
}

func newSoakReport(t *testing.T, path string, classes []*soakClass) *soakReport {
	t.Helper()
	if err := os.MkdirAll(dirOf(path), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	return &soakReport{t: t, classes: classes, out: out, start: time.Now()}
}

func dirOf(path string) string {
	if i := strings.LastIndexByte(path, '/'); i > 0 {
		return path[:i]
	}
	return "."
}

// Printf writes a line to the log and the file.
func (rep *soakReport) Printf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	rep.t.Log(line)
	rep.mu.Lock()
	defer rep.mu.Unlock()
	fmt.Fprintln(rep.out, line)
}

// Event records a churn event with the time since the load started.
func (rep *soakReport) Event(format string, args ...any) {
	rep.Printf("%6s  event: %s", time.Since(rep.start).Round(time.Second), fmt.Sprintf(format, args...))
}

// Header writes the legend and the column names.
func (rep *soakReport) Header(legend []string) {
	for _, l := range legend {
		rep.Printf("# %s", l)
	}
	for _, c := range rep.classes {
		rep.Printf("# %-10s %s", c.Name, c.Note)
	}
	rep.Printf("# a class cell is the answered share of the queries that ended in the window and their count")
	var b strings.Builder
	fmt.Fprintf(&b, "%6s %8s %7s %6s %6s %7s %7s |", "t", "rss_MiB", "gorout", "fds", "logs", "dropped", "rcvbuf")
	for i, c := range rep.classes {
		if i > 0 && c.Hostile && !rep.classes[i-1].Hostile {
			b.WriteString(" |")
		}
		fmt.Fprintf(&b, " %15s", c.Name)
	}
	rep.Printf("%s", b.String())
}

// Row writes one sample.
func (rep *soakReport) Row(s soakSample) {
	var b strings.Builder
	fmt.Fprintf(&b, "%6s %8s %7s %6s %6d %7d %7d |", s.At.Round(time.Second), mib(s.RSS), num(s.Goroutines), num(s.FDs), s.LogLines, s.Dropped, s.RcvbufE)
	for i, c := range rep.classes {
		if i > 0 && c.Hostile && !rep.classes[i-1].Hostile {
			b.WriteString(" |")
		}
		n := s.Counts[i]
		if c.Name == "idle" {
			fmt.Fprintf(&b, " %15s", fmt.Sprintf("open %d +%d", n.Open, n.Sent))
			continue
		}
		fmt.Fprintf(&b, " %15s", fmt.Sprintf("%.2f%% %d", 100*n.Rate(), n.Done()))
	}
	for _, e := range s.Errs {
		fmt.Fprintf(&b, "  [%s]", e)
	}
	for _, n := range s.Notes {
		fmt.Fprintf(&b, "  (%s)", n)
	}
	rep.Printf("%s", b.String())
}

func mib(b int64) string {
	if b < 0 {
		return "?"
	}
	return fmt.Sprintf("%.1f", float64(b)/(1<<20))
}

func inMiB(b int64) string { return mib(b) + " MiB" }

func num(v int64) string {
	if v < 0 {
		return "?"
	}
	return strconv.FormatInt(v, 10)
}

// soakSampler takes the samples.
type soakSampler struct {
	r        *Regiondns
	classes  []*soakClass
	proxies  []*soakProxy
	logLines int
	dropped  int64
	rcvbuf   int64
}

// sample reads the process and takes every class's counts.
func (s *soakSampler) sample(at time.Duration) soakSample {
	out := soakSample{At: at, RSS: -1, Goroutines: -1, FDs: -1}
	pid := s.r.PID()
	if rss, err := procRSS(pid); err != nil {
		out.Errs = append(out.Errs, "rss: "+err.Error())
	} else {
		out.RSS = rss
	}
	if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err != nil {
		out.Errs = append(out.Errs, "fds: "+err.Error())
	} else {
		out.FDs = int64(len(fds))
	}
	// /metrics is read twice at most: once more a second later when the
	// first read fails, and the row says so; a figure that cannot be read
	// twice in a row is an error.
	g, err := s.goroutines()
	if err != nil {
		out.Notes = append(out.Notes, "goroutines read again: "+err.Error())
		time.Sleep(time.Second)
		g, err = s.goroutines()
	}
	if err != nil {
		out.Errs = append(out.Errs, "goroutines: "+err.Error())
	} else {
		out.Goroutines = g
	}
	lines := strings.Count(s.r.Logs(), "\n")
	out.LogLines, s.logLines = int64(lines-s.logLines), lines
	var dropped int64
	for _, p := range s.proxies {
		dropped += p.dropped.Load()
	}
	out.Dropped, s.dropped = dropped-s.dropped, dropped
	if e, err := udpRcvbufErrors(); err == nil {
		out.RcvbufE, s.rcvbuf = e-s.rcvbuf, e
	}
	for _, c := range s.classes {
		out.Counts = append(out.Counts, c.take())
	}
	return out
}

// soakHost describes what the soak ran on: the processors and the
// open-file limits of the test and of regiondns (pid), which bound the
// connections either can hold.
func soakHost(pid int) string {
	var lim syscall.Rlimit
	own := "?"
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		own = fmt.Sprintf("%d/%d", lim.Cur, lim.Max)
	}
	theirs := "?"
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 5 && strings.HasPrefix(line, "Max open files") {
				theirs = f[3] + "/" + f[4]
			}
		}
	}
	return fmt.Sprintf("host: %d CPUs (GOMAXPROCS %d); open files soft/hard: test %s, regiondns %s",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), own, theirs)
}

// procRSS returns the resident set size of pid (VmRSS).
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// goroutines reads go_goroutines from regiondns's /metrics.
func (s *soakSampler) goroutines() (int64, error) {
	code, body, err := s.r.get("/metrics")
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("/metrics: HTTP %d", code)
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return int64(f), err
		}
	}
	return 0, fmt.Errorf("no go_goroutines in /metrics")
}

// udpRcvbufErrors returns the host's count of UDP datagrams dropped for a
// full receive buffer (/proc/net/snmp): a flood that overflows sockets
// shows here, whoever's sockets they are.
func udpRcvbufErrors() (int64, error) {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0, err
	}
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		if i := slices.Index(names, "RcvbufErrors"); i > 0 && i < len(f) {
			return strconv.ParseInt(f[i], 10, 64)
		}
	}
	return 0, fmt.Errorf("no Udp RcvbufErrors in /proc/net/snmp")
}

// soakCheck is one pass/fail judgement of the samples.
type soakCheck struct {
	Name, Detail string
	OK           bool
}

// soakLimits are what the samples are judged against.
type soakLimits struct {
	MaxRSS, MaxGoroutines int64
	// Growth is the share by which the mean of the last third of the
	// samples may exceed the mean of the middle third, on top of the
	// metric's slack (RSSSlack, GoroutineSlack, FDSlack): past that, the
	// figure grows without bound.
	Growth                            float64
	RSSSlack, GoroutineSlack, FDSlack int64
	MinRate                           float64
	Warmup                            int // windows not held to MinRate
}

// judgeSoak returns the checks of the samples against lim.
func judgeSoak(samples []soakSample, classes []*soakClass, lim soakLimits) []soakCheck {
	var checks []soakCheck
	var errs []string
	for _, s := range samples {
		for _, e := range s.Errs {
			errs = append(errs, fmt.Sprintf("%s: %s", s.At, e))
		}
	}
	checks = append(checks, soakCheck{Name: "every figure read", OK: len(errs) == 0, Detail: strings.Join(errs, "; ")})

	rss := func(s soakSample) int64 { return s.RSS }
	gor := func(s soakSample) int64 { return s.Goroutines }
	fds := func(s soakSample) int64 { return s.FDs }
	checks = append(checks,
		ceilingCheck(samples, "RSS", rss, lim.MaxRSS, inMiB),
		ceilingCheck(samples, "goroutines", gor, lim.MaxGoroutines, num),
		growthCheck(samples, "RSS", rss, lim.Growth, lim.RSSSlack, inMiB),
		growthCheck(samples, "goroutines", gor, lim.Growth, lim.GoroutineSlack, num),
		growthCheck(samples, "open fds", fds, lim.Growth, lim.FDSlack, num),
	)
	for i, c := range classes {
		if c.Hostile {
			continue
		}
		var low []string
		worst, worstAt := 2.0, time.Duration(0)
		for _, s := range samples[min(lim.Warmup, len(samples)):] {
			n := s.Counts[i]
			if n.Rate() < worst {
				worst, worstAt = n.Rate(), s.At
			}
			if n.Rate() < lim.MinRate {
				low = append(low, fmt.Sprintf("%s %.2f%% of %d", s.At, 100*n.Rate(), n.Done()))
			}
		}
		detail := fmt.Sprintf("lowest %.2f%% at %s", 100*worst, worstAt)
		if len(low) > 0 {
			detail += "; windows below: " + strings.Join(low, ", ")
		}
		checks = append(checks, soakCheck{
			Name: fmt.Sprintf("%s answered >= %.0f%% in every window after warm-up", c.Name, 100*lim.MinRate),
			OK:   len(low) == 0, Detail: detail,
		})
	}
	return checks
}

func ceilingCheck(samples []soakSample, name string, get func(soakSample) int64, ceiling int64, show func(int64) string) soakCheck {
	peak, at := int64(-1), time.Duration(0)
	for _, s := range samples {
		if v := get(s); v > peak {
			peak, at = v, s.At
		}
	}
	return soakCheck{
		Name:   fmt.Sprintf("%s < %s", name, show(ceiling)),
		OK:     peak < ceiling,
		Detail: fmt.Sprintf("peak %s at %s", show(peak), at),
	}
}

func growthCheck(samples []soakSample, name string, get func(soakSample) int64, growth float64, slack int64, show func(int64) string) soakCheck {
	n := len(samples)
	middle, last := mean(samples[n/3:2*n/3], get), mean(samples[2*n/3:], get)
	limit := int64(float64(middle)*(1+growth)) + slack
	return soakCheck{
		Name: fmt.Sprintf("%s bounded (last third <= middle third + %.0f%% + %s)", name, 100*growth, show(slack)),
		OK:   middle >= 0 && last >= 0 && last <= limit,
		Detail: fmt.Sprintf("middle third %s, last third %s, limit %s",
			show(middle), show(last), show(limit)),
	}
}

// mean returns the mean of the known figures, -1 when none is known.
func mean(samples []soakSample, get func(soakSample) int64) int64 {
	var sum, n int64
	for _, s := range samples {
		if v := get(s); v >= 0 {
			sum += v
			n++
		}
	}
	if n == 0 {
		return -1
	}
	return sum / n
}
