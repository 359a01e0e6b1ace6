//go:build !linux

package main

import "errors"

// execve is not used outside Linux: regiondns runs as it is.
func execve(string, []string, []string) error { return errors.ErrUnsupported }
