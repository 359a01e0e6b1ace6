package watch

import (
	"testing"
	"unsafe"
)

// A resource is kept per watched Consul resource, four per cluster and
// region (8,000 for 1,000 clusters), and a result per resource and per
// query in flight: what a kind does not read is a nil pointer, not a
// struct (see result).
func TestResourceSize(t *testing.T) {
	if size := unsafe.Sizeof(resource{}); size > 512 {
		t.Errorf("a resource takes %d bytes, want at most 512", size)
	}
	if size := unsafe.Sizeof(result{}); size > 96 {
		t.Errorf("a result takes %d bytes, want at most 96", size)
	}
}
