//go:build race

package mutex_test

// raceEnabled: the race detector allocates on its own (3 more per pair).
const raceEnabled = true
