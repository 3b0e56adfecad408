// Package extest runs an example's test against both backends: a real
// redis-server started for the test (internal/redistest) and the embedded
// miniredis with its real-time clock. It never uses $REDIS_ADDR.
package extest

import (
	"bytes"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/examples/internal/exredis"
	"github.com/redlease/redlease/internal/redistest"
)

// Each runs fn as two parallel subtests, "redis-server" and "miniredis",
// each with a fresh server and a client of it (closed when the subtest ends).
func Each(t *testing.T, fn func(t *testing.T, c *redis.Client)) {
	t.Helper()
	t.Run("redis-server", func(t *testing.T) {
		t.Parallel()
		s := redistest.Start(t)
		fn(t, s.Client(t))
	})
	t.Run("miniredis", func(t *testing.T) {
		t.Parallel()
		e, err := exredis.StartEmbedded()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Close) // runs after the client's cleanup below
		fn(t, redistest.NewClient(t, e.Addr()))
	})
}

// Output collects what an example prints and logs it when the test ends
// (visible with -v or on failure). It is safe for concurrent use.
type Output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// NewOutput returns an Output logged through t at cleanup.
func NewOutput(t *testing.T) *Output {
	o := &Output{}
	t.Cleanup(func() { t.Logf("example output:\n%s", o.String()) })
	return o
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

// String returns everything written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}
