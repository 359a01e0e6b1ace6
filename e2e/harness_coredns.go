package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var corednsBin struct {
	once sync.Once
	path string
	err  error
}

// CoreDNSBinary returns the path of a CoreDNS binary: $REGIONDNS_COREDNS_BIN
// if set, else the one `make coredns` installs under <repo>/.cache/bin
// (run here when missing: a few minutes, once; the Makefile holds the
// version).
func CoreDNSBinary(t testing.TB) string {
	t.Helper()
	corednsBin.once.Do(func() {
		if p := os.Getenv("REGIONDNS_COREDNS_BIN"); p != "" {
			corednsBin.path = p
			if _, err := os.Stat(p); err != nil {
				corednsBin.err = fmt.Errorf("REGIONDNS_COREDNS_BIN: %w", err)
			}
			return
		}
		root, err := repoRoot()
		if err != nil {
			corednsBin.err = err
			return
		}
		cmd := exec.Command("make", "-s", "coredns")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			corednsBin.err = fmt.Errorf("make coredns: %w\n%s", err, out)
			return
		}
		found, _ := filepath.Glob(filepath.Join(root, ".cache", "bin", "coredns-*"))
		if len(found) != 1 {
			corednsBin.err = fmt.Errorf("want one CoreDNS under %s/.cache/bin, found %v; set REGIONDNS_COREDNS_BIN", root, found)
			return
		}
		corednsBin.path = found[0]
	})
	if corednsBin.err != nil {
		t.Fatal(corednsBin.err)
	}
	return corednsBin.path
}

// CoreDNS is one running CoreDNS process.
type CoreDNS struct {
	t           testing.TB
	addr        string
	metricsAddr string
	cmd         *exec.Cmd
	done        chan struct{}
	logs        *syncBuffer
}

// StartCoreDNS runs CoreDNS on free loopback ports with one server block
// for the root zone holding plugins (its lines, "prometheus" added), and
// waits until it serves metrics. Cleanup kills it.
func StartCoreDNS(t testing.TB, plugins string) *CoreDNS {
	t.Helper()
	bin := CoreDNSBinary(t)
	var lastErr error
	for range startAttempts {
		ports := FreePorts(t, 2)
		c := &CoreDNS{
			t: t, addr: fmt.Sprintf("127.0.0.1:%d", ports[0]), metricsAddr: fmt.Sprintf("127.0.0.1:%d", ports[1]),
			done: make(chan struct{}), logs: &syncBuffer{},
		}
		corefile := fmt.Sprintf(".:%d {\n\tbind 127.0.0.1\n\tprometheus %s\n%s\n}\n", ports[0], c.metricsAddr, plugins)
		path := filepath.Join(t.TempDir(), "Corefile")
		if err := os.WriteFile(path, []byte(corefile), 0o644); err != nil {
			t.Fatal(err)
		}
		c.cmd = exec.Command(bin, "-conf", path)
		c.cmd.Stdout, c.cmd.Stderr = c.logs, c.logs
		c.cmd.SysProcAttr = procAttr()
		if err := c.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { _ = c.cmd.Wait(); close(c.done) }()
		if lastErr = c.waitReady(); lastErr == nil {
			t.Cleanup(c.stop)
			return c
		}
		c.stop()
		if !strings.Contains(lastErr.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("start CoreDNS: %v", lastErr)
	return nil
}

func (c *CoreDNS) waitReady() error {
	deadline := time.Now().Add(regiondnsReadyTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-c.done:
			return fmt.Errorf("exited:\n%s", c.logs.String())
		case <-time.After(50 * time.Millisecond):
		}
		if resp, err := httpClient.Get("http://" + c.metricsAddr + "/metrics"); err == nil {
			resp.Body.Close()
			return nil
		}
	}
	return fmt.Errorf("no metrics within %s:\n%s", regiondnsReadyTimeout, c.logs.String())
}

func (c *CoreDNS) stop() {
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	<-c.done
	if c.t.Failed() {
		c.t.Logf("--- CoreDNS log ---\n%s", c.logs.String())
	}
}

// Addr returns the address CoreDNS serves DNS on (UDP and TCP).
func (c *CoreDNS) Addr() string { return c.addr }

// Metric returns the sum of the samples of the CoreDNS metrics whose name
// ends with suffix (their names moved between packages across releases),
// 0 when there is none.
func (c *CoreDNS) Metric(suffix string) float64 {
	c.t.Helper()
	return scrapeSum(c.t, "http://"+c.metricsAddr+"/metrics", func(name, _ string) bool {
		return strings.HasSuffix(name, suffix)
	})
}

// scrapeSum fetches a Prometheus text exposition from url and sums the
// samples that match: by metric name and labels (the text between the
// braces, "" without).
func scrapeSum(t testing.TB, url string, match func(name, labels string) bool) float64 {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, labels, rest := line, "", ""
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		if strings.HasPrefix(rest, "{") {
			j := strings.LastIndexByte(rest, '}')
			if j < 0 {
				continue
			}
			labels, rest = rest[1:j], rest[j+1:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 || !match(name, labels) {
			continue
		}
		if v, err := strconv.ParseFloat(fields[0], 64); err == nil {
			sum += v
		}
	}
	return sum
}
