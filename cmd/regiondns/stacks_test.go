package main

import (
	"slices"
	"testing"
)

func TestWithGODEBUG(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     []string
		want    []string
		changed bool
	}{
		{"no GODEBUG", []string{"A=1"}, []string{"A=1", "GODEBUG=adaptivestackstart=0"}, true},
		{"other settings kept", []string{"GODEBUG=gctrace=1", "B=2"}, []string{"B=2", "GODEBUG=gctrace=1,adaptivestackstart=0"}, true},
		{"empty GODEBUG", []string{"GODEBUG="}, []string{"GODEBUG=adaptivestackstart=0"}, true},
		{"the operator's choice stays", []string{"GODEBUG=adaptivestackstart=1"}, []string{"GODEBUG=adaptivestackstart=1"}, false},
		{"among others", []string{"GODEBUG=gctrace=1,adaptivestackstart=1"}, []string{"GODEBUG=gctrace=1,adaptivestackstart=1"}, false},
	} {
		got, changed := withGODEBUG(tc.env, smallStacks)
		if changed != tc.changed || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, %t; want %q, %t", tc.name, got, changed, tc.want, tc.changed)
		}
	}
}
