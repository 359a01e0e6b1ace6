package zones

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// TestREADME keeps README.md true: its first example is testdata/valid-full.yml,
// every example parses, and the key reference lists every key there is.
func TestREADME(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(readme, -1)
	if len(blocks) == 0 {
		t.Fatal("README.md has no yaml example")
	}
	if full := string(readTestdata(t, "valid-full.yml")); blocks[0][1] != full {
		t.Errorf("README.md's first example differs from testdata/valid-full.yml")
	}
	for i, b := range blocks {
		if _, err := Parse([]byte(b[1])); err != nil {
			t.Errorf("README.md example %d: %v", i, err)
		}
	}
	for _, key := range keyPaths(reflect.TypeFor[fileConfig](), "") {
		if !strings.Contains(readme, "\n| `"+key+"` |") {
			t.Errorf("README.md key reference has no row for %s", key)
		}
	}
}

// keyPaths lists the key paths of t's YAML, "[]" standing for a list index.
func keyPaths(t reflect.Type, prefix string) []string {
	var keys []string
	for f := range fieldsOf(t) {
		key := join(prefix, yamlKey(f))
		keys = append(keys, key)
		ft := f.Type
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			key += "[]"
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct {
			keys = append(keys, keyPaths(ft, key)...)
		}
	}
	return keys
}

// TestTopREADMEExample keeps the minimal zone file of the repository's
// README.md valid: every yaml example there parses.
func TestTopREADMEExample(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(data), -1)
	if len(blocks) == 0 {
		t.Fatal("../README.md has no yaml example")
	}
	for i, b := range blocks {
		if _, err := Parse([]byte(b[1])); err != nil {
			t.Errorf("../README.md example %d: %v", i, err)
		}
	}
}
