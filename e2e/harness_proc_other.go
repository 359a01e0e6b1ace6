//go:build unix && !linux

package e2e

import "syscall"

// procAttr puts a child in its own process group, so that the harness can
// kill it with everything it started.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
