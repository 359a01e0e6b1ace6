// Command regiondns is the authoritative DNS server for the read-write and
// read-only names of multi-region Patroni clusters.
//
// Usage:
//
//	regiondns [serve]       serve DNS, metrics and health (the default)
//	regiondns check-config  validate the zone file and exit
//	regiondns ctl ...       pin a cluster's active region, drain members, show the state
//	regiondns version       print the version and exit
//
// Settings come from REGIONDNS_* environment variables; see docs/operations.md.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/regiondns/regiondns/watch"
)

func main() {
	runWithSmallStacks()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the exit, so that tests can call it.
func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 {
		cmd = args[0]
	}
	switch cmd {
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, versionString())
		return 0
	case "ctl":
		return runCtl(args[1:], stdout, stderr)
	case "check-config", "serve":
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "regiondns: unknown command %q\n%s\n", cmd, usage)
		return 2
	}
	settings, err := loadSettings()
	if err != nil {
		fmt.Fprintf(stderr, "regiondns: %v\n", err)
		return 2
	}
	if cmd == "check-config" {
		return checkConfig(settings, stdout, stderr)
	}
	// One redactor for the whole process: the watcher teaches it every
	// Consul token it reads, and every log line goes through it.
	redactor := watch.NewRedactor()
	logger, err := newLogger(settings, stderr, redactor)
	if err != nil {
		fmt.Fprintf(stderr, "regiondns: %v\n", err)
		return 2
	}
	tuneGC(os.Getenv)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if err := serve(ctx, settings, logger, redactor, hup); err != nil {
		logger.Error("regiondns stopped", "err", err)
		return 1
	}
	return 0
}

// gcPercent is the GOGC regiondns runs with unless the GOGC environment
// variable says otherwise. The query path allocates nothing, so collections
// follow only the watchers' reads and the rebuilds; at 50 the heap grows to
// 1.5 times what is live (plus the goroutine stacks) instead of twice, which
// keeps a 1,000-cluster fleet within its memory target at the cost of
// collections twice as often, each of them cheap and rare.
const gcPercent = 50

// tuneGC sets gcPercent, unless getenv("GOGC") is set: an operator's own
// GOGC, which the Go runtime has applied already, wins.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}

const usage = `usage: regiondns [serve|check-config|ctl|version]
settings: REGIONDNS_CONFIG, REGIONDNS_DNS_ADDR, REGIONDNS_HTTP_ADDR, ... (see README)`
