package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// repoRoot returns the root of the regiondns repository: $REGIONDNS_REPO_ROOT,
// else the parent of the directory holding e2e/go.mod, found upwards from the
// working directory (go test runs in the package directory).
func repoRoot() (string, error) {
	if d := os.Getenv("REGIONDNS_REPO_ROOT"); d != "" {
		return d, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if fileExists(filepath.Join(dir, "e2e", "go.mod")) && fileExists(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root not found above the working directory; set REGIONDNS_REPO_ROOT")
		}
		dir = parent
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// tailFile returns at most the last n bytes of a file, or why not.
func tailFile(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	off := max(st.Size()-n, 0)
	buf := make([]byte, st.Size()-off)
	_, _ = f.ReadAt(buf, off)
	return string(buf)
}
