//go:build !unix

package resolver

import "testing"

// raiseFileLimit does nothing where open files have no per-process limit
// to raise.
func raiseFileLimit(*testing.T, uint64) {}
