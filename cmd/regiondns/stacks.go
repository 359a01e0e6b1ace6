package main

import (
	"os"
	"strings"
)

// smallStacks is the GODEBUG setting regiondns runs with unless GODEBUG
// says otherwise.
//
// regiondns parks a goroutine a few frames deep for each blocking query it
// holds on Consul, thousands of them for a large fleet
// (watch.pollTransport.Go). Go starts every new goroutine with a stack the
// size of the average one it last scanned (adaptivestackstart): while
// answers are being decoded (at start, in a burst of changes) that is
// twice what a parked query needs, and a stack never shrinks below four
// times what it holds, so each query parked then keeps twice its stack
// until its answer comes, a wait time later. Every goroutine starts at the
// minimum instead; the few that do more grow their stack.
const smallStacks = "adaptivestackstart=0"

// withGODEBUG returns env (os.Environ's form) with setting appended to
// GODEBUG, and false when GODEBUG already sets that setting's key.
func withGODEBUG(env []string, setting string) ([]string, bool) {
	key, _, _ := strings.Cut(setting, "=")
	out := make([]string, 0, len(env)+1)
	value := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
			value = v
			continue
		}
		out = append(out, kv)
	}
	for _, field := range strings.Split(value, ",") {
		if k, _, _ := strings.Cut(field, "="); k == key {
			return env, false
		}
	}
	if value != "" {
		value += ","
	}
	return append(out, "GODEBUG="+value+setting), true
}

// runWithSmallStacks runs the process again with smallStacks in GODEBUG,
// which the runtime reads only at start, unless GODEBUG sets it already; it
// returns only when it does not (or cannot) run it again, and regiondns
// then goes on as it is.
func runWithSmallStacks() {
	env, ok := withGODEBUG(os.Environ(), smallStacks)
	if !ok {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	_ = execve(exe, os.Args, env)
}
