//go:build !race

package resolver

// raceDetector is true when the tests run under the race detector, which
// makes accepting, closing and starting goroutines several times slower.
const raceDetector = false
