package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/regiondns/regiondns/engine"
)

// The status page in a real browser, as `make browser-test` runs it:
// REGIONDNS_CHROMIUM names Debian's chromium (scripts/install-browser-deps.sh
// installs it), and REGIONDNS_SCREENSHOT where the screenshot goes
// (default .cache/status-page.png; docs/status-page.png is a copy).
const (
	chromiumEnv   = "REGIONDNS_CHROMIUM"
	screenshotEnv = "REGIONDNS_SCREENSHOT"
)

// A 1,000-cluster fleet's status page is rendered in under a second on
// the server, and Chromium shows a table that matches /debug/state: every
// cluster, its active region and each name's endpoints. The screenshots,
// at a desktop's size and at a phone's (filtered), are valid PNG pictures
// of it.
func TestStatusPageInBrowser(t *testing.T) {
	chromium := os.Getenv(chromiumEnv)
	if chromium == "" {
		t.Skip(chromiumEnv + " is not set: make browser-test installs Chromium and runs this test")
	}
	const n = 1000
	e, m := startFleet(t, n)
	h := newHTTPHandler(e, m)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	// Server-side: the handler alone, the best of three, so that a
	// moment of a busy machine does not count.
	best := time.Hour
	for range 3 {
		start := time.Now()
		getStatus(t, h, "")
		best = min(best, time.Since(start))
	}
	t.Logf("status page of %d clusters rendered in %v", n, best)
	if best >= time.Second {
		t.Errorf("the status page of %d clusters took %v to render, want under 1 s", n, best)
	}

	resp, err := http.Get(srv.URL + "/debug/state")
	if err != nil {
		t.Fatal(err)
	}
	var st engine.State
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("/debug/state: %v", err)
	}
	if len(st.Clusters) != n {
		t.Fatalf("/debug/state has %d clusters, want %d", len(st.Clusters), n)
	}

	dom := runChromium(t, chromium, "--dump-dom", srv.URL+"/")
	rows, _ := parseStatusRows(t, dom)
	checkStatusRows(t, rows, st)

	shot := os.Getenv(screenshotEnv)
	if shot == "" {
		shot = "../../.cache/status-page.png"
	}
	for _, s := range []struct {
		path, query   string
		width, height int
	}{
		{shot, "", 1280, 900},
		{filepath.Join(filepath.Dir(shot), "status-page-phone.png"), "?q=split+brain", 390, 844},
	} {
		if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
			t.Fatal(err)
		}
		abs, err := filepath.Abs(s.path)
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(abs)
		runChromium(t, chromium, "--screenshot="+abs, "--window-size="+itoa(s.width)+","+itoa(s.height), srv.URL+"/"+s.query)
		checkPNG(t, abs, s.width, s.height)
	}
}

// runChromium runs headless Chromium with a profile of its own on args and
// returns what it printed on standard output.
func runChromium(t *testing.T, chromium string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--hide-scrollbars", "--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, chromium, append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.Bytes())
	}
	return stdout.Bytes()
}

// checkPNG checks that path is a PNG picture of width x height that is not
// blank: a page of text has many colours.
func checkPNG(t *testing.T, path string, width, height int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	if b := img.Bounds(); b != image.Rect(0, 0, width, height) {
		t.Errorf("screenshot %s is %v, want %dx%d", path, b, width, height)
	}
	colours := map[[4]uint32]bool{}
	for y := 0; y < height; y += 3 {
		for x := 0; x < width; x += 3 {
			r, g, b, a := img.At(x, y).RGBA()
			colours[[4]uint32{r, g, b, a}] = true
		}
	}
	if len(colours) < 16 {
		t.Errorf("screenshot %s has %d colours: blank", path, len(colours))
	}
}
