package e2e

import (
	"os"
	"testing"
)

// TestMain removes the regiondns binary BuildRegiondns built, after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	CleanupBuilds()
	os.Exit(code)
}
