package e2e

import "syscall"

// procAttr puts a child in its own process group, so that the harness can
// kill it with everything it started, and has the kernel kill it when the
// test binary dies without running its cleanups (a -timeout panic, a
// SIGKILL).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
