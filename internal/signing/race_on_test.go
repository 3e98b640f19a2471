//go:build race

package signing_test

// The race detector makes sync.Pool drop items on purpose, so allocation
// counts of pooled code are meaningless under it.
const raceEnabled = true
