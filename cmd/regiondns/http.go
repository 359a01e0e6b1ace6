package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/regiondns/regiondns/engine"
)

// newHTTPHandler serves /metrics, /healthz, /readyz, /debug/state and
// /debug/history.
func newHTTPHandler(e *engine.Engine, m *metrics) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		for _, st := range e.Regions() {
			if !st.Ready {
				http.Error(w, "region "+st.Name+" has not been read yet", http.StatusServiceUnavailable)
				return
			}
		}
		w.Write([]byte("ready\n"))
	})
	// The status page, for people: /debug/state made readable.
	mux.HandleFunc("GET /{$}", statusHandler(e))
	mux.HandleFunc("GET /debug/state", stateHandler(e))
	mux.HandleFunc("GET /debug/history", historyHandler(e))
	return mux
}

// newHTTPServer returns the server of the HTTP port and ln bounded to
// s.HTTPMaxConns open connections, for it to serve on. Every phase of a
// connection has a deadline, so that a slow or idle client holds its
// connection for a bounded time. pprof is served only if s.Pprof: a CPU
// profile or a trace costs the DNS path CPU time, and profiles reveal the
// code's internals.
func newHTTPServer(s settings, h http.Handler, ln net.Listener) (*http.Server, net.Listener) {
	if s.Pprof {
		h = withPprof(h, s.HTTPWriteTimeout)
	}
	limited := newConnLimiter(ln, s.HTTPMaxConns)
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.HTTPReadHeaderTimeout,
		ReadTimeout:       s.HTTPReadTimeout,
		WriteTimeout:      s.HTTPWriteTimeout,
		IdleTimeout:       s.HTTPIdleTimeout,
		ConnState:         limited.connState,
	}, limited
}

// withPprof serves Go's profiles under /debug/pprof/, none of them over a
// longer time than maxTime, and everything else with h.
func withPprof(h http.Handler, maxTime time.Duration) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", limitSeconds(maxTime, pprof.Index))
	mux.HandleFunc("GET /debug/pprof/profile", limitSeconds(maxTime, pprof.Profile))
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", limitSeconds(maxTime, pprof.Trace))
	mux.Handle("/", h)
	return mux
}

// limitSeconds refuses a request whose seconds parameter (the length of a
// CPU profile, a trace or a delta profile) is over max: pprof extends the
// connection's write deadline by the time asked, so without a limit one
// request could hold a connection, and profile the process, for a day.
func limitSeconds(max time.Duration, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if v := r.FormValue("seconds"); v != "" {
			// NaN fails every comparison: refused too.
			if sec, err := strconv.ParseFloat(v, 64); err == nil && !(sec <= max.Seconds()) {
				http.Error(w, fmt.Sprintf("seconds=%s is over REGIONDNS_HTTP_WRITE_TIMEOUT (%s)", v, max), http.StatusBadRequest)
				return
			}
		}
		h(w, r)
	}
}
