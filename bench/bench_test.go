package main

import (
	"context"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/mutex"
)

// The go test benchmarks share one redis-server, started by the first
// benchmark that needs it and killed by TestMain.
var (
	testSrvOnce sync.Once
	testSrv     *server
	testSrvErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if testSrv != nil {
		testSrv.Kill()
	}
	os.Exit(code)
}

func testClient(b *testing.B) *redis.Client {
	b.Helper()
	testSrvOnce.Do(func() { testSrv, testSrvErr = startServer() })
	if testSrvErr != nil {
		b.Skipf("redis-server: %v", testSrvErr)
	}
	c, _ := newClient(testSrv.Addr)
	b.Cleanup(func() { _ = c.Close() })
	return c
}

// benchPairs measures TryLock+Release pairs on fresh keys, one goroutine.
func benchPairs(b *testing.B, l Locker, prefix string) {
	ctx := context.Background()
	for i := range 50 { // load scripts, open a connection
		u, err := l.TryLock(ctx, prefix+"warm:"+strconv.Itoa(i))
		if err != nil {
			b.Fatal(err)
		}
		_ = u(ctx)
	}
	keys := make([]string, b.N)
	for i := range keys {
		keys[i] = prefix + strconv.Itoa(b.N) + ":" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		u, err := l.TryLock(ctx, keys[i])
		if err != nil {
			b.Fatal(err)
		}
		if err := u(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRedleaseTryLockRelease: one mutex.New + TryLock + Release per op.
func BenchmarkRedleaseTryLockRelease(b *testing.B) {
	benchPairs(b, redleaseLocker{testClient(b)}, "bt:redlease:")
}

// BenchmarkFloorTryLockRelease: SET NX + EVALSHA compare-and-delete per op,
// the floor the redlease benchmark is compared with.
func BenchmarkFloorTryLockRelease(b *testing.B) {
	benchPairs(b, floorLocker{testClient(b)}, "bt:floor:")
}

// benchContended: 8 goroutines of one process (one client) take turns on one
// key with Lock + Release, hold 0; an op is one acquisition.
func benchContended(b *testing.B, l Locker, key string) {
	const workers = 8
	ctx := context.Background()
	var (
		left    atomic.Int64
		holders atomic.Int32
		bad     atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	left.Store(int64(b.N))
	b.ReportAllocs()
	b.ResetTimer()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				u, err := l.Lock(ctx, key)
				if err == nil {
					if holders.Add(1) != 1 {
						bad.Add(1)
					}
					holders.Add(-1)
					err = u(ctx)
				}
				if err != nil {
					errOnce.Do(func() { first = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if first != nil {
		b.Fatal(first)
	}
	if n := bad.Load(); n > 0 {
		b.Fatalf("%d mutual-exclusion violations", n)
	}
}

// BenchmarkRedleaseContended8: ns and allocations per acquisition of one key
// by 8 goroutines sharing a client.
func BenchmarkRedleaseContended8(b *testing.B) {
	benchContended(b, redleaseLocker{testClient(b)}, "bt:contended:redlease:"+strconv.Itoa(b.N))
}

// BenchmarkFloorContended8: the same with the spinning floor (1 ms sleeps).
func BenchmarkFloorContended8(b *testing.B) {
	benchContended(b, floorLocker{testClient(b)}, "bt:contended:floor:"+strconv.Itoa(b.N))
}

// BenchmarkRedleaseNoRenewTryLockRelease: as BenchmarkRedleaseTryLockRelease
// with WithAutoRenew(false): what the renewer costs a short lease.
func BenchmarkRedleaseNoRenewTryLockRelease(b *testing.B) {
	c := testClient(b)
	benchPairs(b, lockerFunc(func(ctx context.Context, key string) (Unlock, error) {
		m, err := mutex.New(c, key, mutex.WithAutoRenew(false))
		if err != nil {
			return nil, err
		}
		ls, err := m.TryLock(ctx)
		if err != nil {
			return nil, err
		}
		return ls.Release, nil
	}), "bt:norenew:")
}

// lockerFunc adapts a TryLock function (Lock is not used by benchPairs).
type lockerFunc func(ctx context.Context, key string) (Unlock, error)

func (f lockerFunc) TryLock(ctx context.Context, key string) (Unlock, error) { return f(ctx, key) }
func (f lockerFunc) Lock(ctx context.Context, key string) (Unlock, error)    { return f(ctx, key) }
