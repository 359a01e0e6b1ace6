package main

import (
	"log/slog"
	"runtime"
	"syscall"
)

// fdMargin covers the descriptors not counted by fdNeed: listeners, the
// epoll instances, the zone and token files while they are read, the
// liveness checks of the Consul agents and idle connections to them.
const fdMargin = 128

// fdNeed is how many file descriptors regiondns may hold at once under s
// while it watches resources Consul resources: a connection per resource
// (each may be followed with a blocking query), the DNS TCP connections,
// a socket per delegated query in flight, the HTTP connections and the
// UDP sockets, and fdMargin.
func fdNeed(s settings, resources int) int {
	udp := s.UDPSockets
	if udp == 0 {
		udp = runtime.GOMAXPROCS(0)
	}
	return resources + s.TCPMaxConns + s.MaxInflight + s.HTTPMaxConns + udp + fdMargin
}

// checkFDLimit warns when the open-file limit (its soft value, which the
// Go runtime raises to the hard one at start) is below fdNeed: past it,
// Consul reads, DNS TCP connections and delegated queries fail with "too
// many open files" under load, each where it happens to run out first.
// getrlimit is syscall.Getrlimit but in tests.
func checkFDLimit(s settings, resources int, logger *slog.Logger, getrlimit func(int, *syscall.Rlimit) error) {
	var lim syscall.Rlimit
	if err := getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	need := fdNeed(s, resources)
	if lim.Cur >= uint64(need) {
		return
	}
	logger.Warn("open-file limit below what regiondns may need: raise it (LimitNOFILE, ulimit -n) or lower the bounds",
		"limit", lim.Cur, "need", need, "consul_resources", resources, "REGIONDNS_TCP_MAX_CONNS", s.TCPMaxConns,
		"REGIONDNS_MAX_INFLIGHT", s.MaxInflight, "REGIONDNS_HTTP_MAX_CONNS", s.HTTPMaxConns)
}
