package mutex_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/mutex"
)

var nameSeq atomic.Int64

// uniqueName returns a lock name no other test uses.
func uniqueName(t *testing.T) string {
	return fmt.Sprintf("%s-%d", t.Name(), nameSeq.Add(1))
}

func newMutex(t *testing.T, c redis.UniversalClient, name string, opts ...mutex.Option) *mutex.Mutex {
	t.Helper()
	m, err := mutex.New(c, name, opts...)
	if err != nil {
		t.Fatalf("mutex.New(%q): %v", name, err)
	}
	return m
}

func startRedis(t *testing.T) (*redistest.Server, *redis.Client) {
	t.Helper()
	s := redistest.Start(t)
	return s, s.Client(t)
}
