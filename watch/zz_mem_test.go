package watch

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"
)

func zzServe(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			br := bufio.NewReader(c)
			for {
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				if req.URL.Query().Get("index") == "7" {
					select {} // park forever
				}
				body := "[]"
				code := 200
				if strings.HasPrefix(req.URL.Path, "/v1/kv/") {
					code = 200
					body = `[{"Key":"x","Value":"eA=="}]`
				}
				fmt.Fprintf(c, "HTTP/1.1 %d OK\r\nX-Consul-Index: 7\r\nContent-Length: %d\r\n\r\n%s", code, len(body), body)
			}
		}()
	}
}

func TestZZMem(t *testing.T) {
	if os.Getenv("ZZSERVER") != "" {
		ln, _ := net.Listen("tcp", os.Getenv("ZZSERVER"))
		zzServe(ln)
		return
	}
	if os.Getenv("ZZ") == "" {
		t.Skip()
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(os.Args[0], "-test.run", "TestZZMem")
	cmd.Env = append(os.Environ(), "ZZSERVER="+addr)
	cmd.Start()
	t.Cleanup(func() { cmd.Process.Kill() })
	time.Sleep(500 * time.Millisecond)
	var labels []string
	for i := 0; i < 500; i++ {
		labels = append(labels, fmt.Sprintf("c%03d", i))
	}
	cfg := withClusters(testConfig("http://"+addr, "http://"+addr), nil, labels...)
	opts := fastOptions
	opts.WaitTime = 2 * time.Second
	opts.KVRefresh = time.Hour
	opts.KVFollow = time.Millisecond
	runtime.MemProfileRate = 512
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	w, _ := New(cfg, opts, slog.New(slog.DiscardHandler))
	runWatcher(t, w)
	waitFor(t, "ready", w.Ready)
	time.Sleep(12 * time.Second)
	for i := 0; i < 4; i++ {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms1)
	if f, err := os.Create("/tmp/p3lock/heap.prof"); err == nil {
		pprof.WriteHeapProfile(f)
		f.Close()
	}
	st := w.Status()
	n := st[0].Following + st[1].Following
	t.Logf("following %d: stack %d B/each, heap %d B/each, goroutines %d, total %d KiB",
		n, (ms1.StackInuse-ms0.StackInuse)/uint64(n), (ms1.HeapAlloc-ms0.HeapAlloc)/uint64(n), runtime.NumGoroutine(),
		(ms1.StackInuse-ms0.StackInuse+ms1.HeapAlloc-ms0.HeapAlloc)>>10)
}
