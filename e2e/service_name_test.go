package e2e

import (
	"os"
	"strings"
	"testing"
)

// The harness registers its Patroni members under the service name
// regiondns watches: harness_service_name.go is ../zones/service_name.go
// with the package clause changed, as go generate writes it. A change to
// one without the other fails here.
func TestServiceNameIsZones(t *testing.T) {
	src, err := os.ReadFile("../zones/service_name.go")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("harness_service_name.go")
	if err != nil {
		t.Fatal(err)
	}
	body, ok := strings.CutPrefix(string(src), "package zones\n")
	if !ok {
		t.Fatal("../zones/service_name.go does not start with its package clause")
	}
	want := "// Code generated from ../zones/service_name.go by go generate; DO NOT EDIT.\n\npackage e2e\n" + body
	if string(got) != want {
		t.Error("harness_service_name.go is not ../zones/service_name.go; run go generate in e2e")
	}
}
