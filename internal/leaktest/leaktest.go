// Package leaktest holds the goleak options every redlease test package uses.
package leaktest

import "go.uber.org/goleak"

// Options ignores goroutines that go-redis itself starts and ends on its own
// schedule: after PoolSize failed dials a pool probes the server once a
// second until it answers or is closed, and it notices the close only after
// its sleep. Everything redlease starts is still checked.
func Options() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"),
	}
}
