// Command regiondns is the authoritative DNS server for the read-write and
// read-only names of multi-region Patroni clusters.
//
// Usage:
//
//	regiondns [serve]       serve DNS, metrics and health (the default)
//	regiondns check-config  validate the zone file and exit
//	regiondns version       print the version and exit
//
// Settings come from REGIONDNS_* environment variables; see the README.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

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
	logger, err := newLogger(settings, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "regiondns: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if err := serve(ctx, settings, logger, hup); err != nil {
		logger.Error("regiondns stopped", "err", err)
		return 1
	}
	return 0
}

const usage = `usage: regiondns [serve|check-config|version]
settings: REGIONDNS_CONFIG, REGIONDNS_DNS_ADDR, REGIONDNS_HTTP_ADDR, ... (see README)`
