package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"

	"github.com/regiondns/regiondns/cache"
	"github.com/regiondns/regiondns/engine"
	"github.com/regiondns/regiondns/forward"
	"github.com/regiondns/regiondns/resolver"
	"github.com/regiondns/regiondns/watch"
	"github.com/regiondns/regiondns/zones"
)

// serve runs regiondns until ctx is done: the watchers, the snapshot
// builder, the DNS server and the HTTP endpoints.
func serve(ctx context.Context, s settings, logger *slog.Logger, redactor *watch.Redactor, hup <-chan os.Signal) error {
	cfg, err := zones.Load(s.Config)
	if err != nil {
		return err
	}
	w, err := watch.New(cfg, watch.Options{WaitTime: s.ConsulWait, MaxResponse: s.ConsulMaxResponse, Redactor: redactor}, logger)
	if err != nil {
		return err
	}
	checkFDLimit(s, w.Resources(), logger, syscall.Getrlimit)
	m := newMetrics(w)
	store := &cache.Store{}

	fwd, err := newForwarder(s, cfg, logger)
	if err != nil {
		return err
	}
	var delegator resolver.Delegator // nil: names outside the zone are REFUSED
	if fwd != nil {
		m.registry.MustRegister(forward.NewCollector(fwd))
		delegator = fwd
	}
	// A reload swaps the forwarder's upstreams in place; one that names no
	// local region fails as a whole.
	e := engine.New(cfg, w, store, engine.Options{Logger: logger, Observer: m, Path: s.Config,
		BeforeReload: reloadForwarder(s, fwd), History: s.History})
	// Until the first read, every configured name answers NODATA: the names
	// exist, their data does not yet.
	e.Rebuild()
	hopts, err := handlerOptions(s, delegator)
	if err != nil {
		return err
	}
	handler := resolver.New(store, hopts, logger)
	dnsSrv := resolver.NewServer(s.DNSAddr, handler, serverOptions(s), logger)
	m.registry.MustRegister(newDNSCollector(dnsSrv.Stats))
	if err := dnsSrv.Start(ctx); err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	ln, err := net.Listen("tcp", s.HTTPAddr)
	if err != nil {
		dnsSrv.Shutdown(context.Background())
		return fmt.Errorf("http: %w", err)
	}
	httpSrv, ln := newHTTPServer(s, newHTTPHandler(e, m), ln)
	logger.Info("regiondns serving", "version", version, "zone", cfg.Zone, "dns", dnsSrv.Addr(),
		"http", ln.Addr().String(), "clusters", len(cfg.Clusters))

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); w.Run(runCtx) }()
	go func() { defer wg.Done(); e.Run(runCtx) }()
	go func() {
		defer wg.Done()
		if err := httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("http server failed", "err", err)
		}
	}()

	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-hup:
			e.Reload()
		}
	}

	logger.Info("shutting down", "timeout", s.ShutdownTimeout)
	shutCtx, shutCancel := context.WithTimeout(context.Background(), s.ShutdownTimeout)
	defer shutCancel()
	dnsErr := dnsSrv.Shutdown(shutCtx)
	httpErr := httpSrv.Shutdown(shutCtx)
	cancel()
	wg.Wait()
	return errors.Join(dnsErr, httpErr)
}
