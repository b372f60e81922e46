//go:build race

package testenv

// Race is true when the tests run under the race detector, whose instrumentation changes what
// allocation counts measure (see Allocated).
const Race = true
