package promhist

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Per-bucket counts become cumulative buckets; the overflow counts in the
// total only, and the count is the total of the counts.
func TestConst(t *testing.T) {
	desc := prometheus.NewDesc("regiondns_test_duration_seconds", "test", []string{"l"}, nil)
	bounds := []float64{0.001, 0.01, 0.1}
	m := Const(desc, bounds, []uint64{1, 0, 2, 1}, 3, "x")
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatal(err)
	}
	h := out.GetHistogram()
	if h.GetSampleCount() != 4 || h.GetSampleSum() != 3 {
		t.Errorf("count %d sum %g, want 4 and 3", h.GetSampleCount(), h.GetSampleSum())
	}
	want := []uint64{1, 1, 3}
	if len(h.GetBucket()) != len(want) {
		t.Fatalf("%d buckets, want %d", len(h.GetBucket()), len(want))
	}
	for i, b := range h.GetBucket() {
		if b.GetUpperBound() != bounds[i] || b.GetCumulativeCount() != want[i] {
			t.Errorf("bucket %d: le %g count %d, want le %g count %d", i, b.GetUpperBound(), b.GetCumulativeCount(), bounds[i], want[i])
		}
	}
	if got := out.GetLabel(); len(got) != 1 || got[0].GetValue() != "x" {
		t.Errorf("labels %v, want l=x", got)
	}
}
