package mutex_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/cenkalti/backoff/v4"
	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/core"
	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

func TestNewRejectsBadInput(t *testing.T) {
	mr := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer c.Close()
	var nilClient *redis.Client
	cases := []struct {
		name   string
		client redis.UniversalClient
		lock   string
		opts   []mutex.Option
		want   string // part of the message naming the value
	}{
		{"nil client", nil, "x", nil, "client is nil"},
		{"typed nil client", nilClient, "x", nil, "client is nil"},
		{"empty name", c, "", nil, "must not be empty"},
		{"empty hash tag", c, "}x", nil, "hash tag"},
		{"zero ttl", c, "x", []mutex.Option{mutex.WithTTL(0)}, "TTL 0s"},
		{"negative ttl", c, "x", []mutex.Option{mutex.WithTTL(-time.Second)}, "TTL -1s"},
		{"ttl under minimum", c, "x", []mutex.Option{mutex.WithTTL(mutex.MinTTL - time.Millisecond)}, "must be at least"},
		{"renew equal to ttl", c, "x", []mutex.Option{mutex.WithTTL(time.Second), mutex.WithRenewInterval(time.Second)}, "renew interval 1s"},
		{"renew over ttl", c, "x", []mutex.Option{mutex.WithTTL(time.Second), mutex.WithRenewInterval(2 * time.Second)}, "renew interval 2s"},
		{"renew zero", c, "x", []mutex.Option{mutex.WithRenewInterval(0)}, "renew interval 0s"},
		{"renew negative", c, "x", []mutex.Option{mutex.WithRenewInterval(-time.Millisecond)}, "renew interval -1ms"},
		{"drift negative", c, "x", []mutex.Option{mutex.WithDriftFactor(-0.1)}, "drift factor -0.1"},
		{"drift half", c, "x", []mutex.Option{mutex.WithDriftFactor(0.5)}, "drift factor 0.5"},
		{"drift NaN", c, "x", []mutex.Option{mutex.WithDriftFactor(math.NaN())}, "drift factor NaN"},
		{"empty token", c, "x", []mutex.Option{mutex.WithToken("")}, `token ""`},
		{"nil backoff", c, "x", []mutex.Option{mutex.WithBackoff(nil)}, "backoff"},
		{"nil option", c, "x", []mutex.Option{nil}, "nil option"},
		{"prefix with empty tag", c, "x", []mutex.Option{mutex.WithKeyPrefix("a{}")}, "hash tag"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := mutex.New(tc.client, tc.lock, tc.opts...)
			if !errors.Is(err, mutex.ErrInvalid) {
				t.Fatalf("got (%v, %v), want an error wrapping ErrInvalid", m, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name the value (%q)", err, tc.want)
			}
		})
	}
	if len(mr.Keys()) != 0 {
		t.Fatalf("bad input touched Redis: keys %v", mr.Keys())
	}
}

func TestTryLockAndFence(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	name := uniqueName(t)
	m := newMutex(t, c, name)
	if m.Name() != name {
		t.Fatalf("Name() = %q, want %q", m.Name(), name)
	}
	var last int64
	for i := 0; i < 5; i++ {
		l, err := m.TryLock(ctx)
		if err != nil {
			t.Fatalf("TryLock #%d: %v", i, err)
		}
		if _, err := m.TryLock(ctx); !errors.Is(err, mutex.ErrLocked) || !strings.Contains(err.Error(), name) {
			t.Fatalf("TryLock while held: %v, want ErrLocked naming %q", err, name)
		}
		if l.Fence() <= last {
			t.Fatalf("fence %d not above previous %d", l.Fence(), last)
		}
		last = l.Fence()
		if l.Name() != name || len(l.Token()) != 32 {
			t.Fatalf("lease name %q token %q", l.Name(), l.Token())
		}
		if err := l.Release(ctx); err != nil {
			t.Fatalf("Release: %v", err)
		}
	}
	if n, _ := c.Exists(ctx, "redlease:{"+name+"}").Result(); n != 0 {
		t.Fatalf("lock key left after release")
	}
}

func TestLockWaitsForRelease(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	m := newMutex(t, c, uniqueName(t))
	holder, err := m.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *lease.Lease, 1)
	go func() {
		l, err := m.Lock(ctx)
		if err != nil {
			t.Errorf("waiter: %v", err)
		}
		got <- l
	}()
	select {
	case <-got:
		t.Fatal("waiter acquired while the lock was held")
	case <-time.After(100 * time.Millisecond):
	}
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	l := <-got
	if l == nil {
		t.FailNow()
	}
	if l.Fence() <= holder.Fence() { // the waiter's busy attempts drew fences too
		t.Fatalf("waiter fence %d, holder %d", l.Fence(), holder.Fence())
	}
	_ = l.Release(ctx)
}

func TestLockContextDeadline(t *testing.T) {
	_, c := startRedis(t)
	name := uniqueName(t)
	holder, err := newMutex(t, c, name).Lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Release(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	l, err := newMutex(t, c, name).Lock(ctx)
	if l != nil || !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, mutex.ErrLocked) {
		t.Fatalf("Lock on a held lock: (%v, %v), want DeadlineExceeded and ErrLocked", l, err)
	}
	if v, _ := c.Get(context.Background(), "redlease:{"+name+"}").Result(); !core.Holds(v, holder.Token()) {
		t.Fatalf("lock key holds %q, want the holder's token", v)
	}

	// An already canceled context: no attempt leaves anything behind.
	free := uniqueName(t)
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if _, err := newMutex(t, c, free).Lock(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Lock with canceled ctx: %v", err)
	}
	if n, _ := c.Exists(context.Background(), "redlease:{"+free+"}").Result(); n != 0 {
		t.Fatal("canceled Lock left the key held")
	}
}

func TestLockRetriesRedisErrorsUntilDeadline(t *testing.T) {
	s := redistest.Start(t)
	// One dial per attempt: go-redis's default (5 dials, 100ms apart) makes
	// each attempt against a dead server last ~1.7s before it reports.
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	m := newMutex(t, c, uniqueName(t), mutex.WithBackoff(func() backoff.BackOff { return backoff.NewConstantBackOff(10 * time.Millisecond) }))
	s.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	_, err := m.Lock(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock with Redis down: %v, want DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), "connect") && !strings.Contains(err.Error(), "refused") {
		t.Fatalf("error %q does not carry the Redis error", err)
	}
}

func TestCustomToken(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	name := uniqueName(t)
	m := newMutex(t, c, name, mutex.WithToken("my-token"))
	l, err := m.TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if l.Token() != "my-token" {
		t.Fatalf("Token() = %q", l.Token())
	}
	if v, _ := c.Get(ctx, "redlease:{"+name+"}").Result(); v != fmt.Sprintf("%d:0:my-token", l.Fence()) {
		t.Fatalf("key holds %q", v)
	}
	// A custom token names an owner: acquiring a key that holds it is a
	// re-obtain (redis-py acquire(token=...) by a resuming process). It takes
	// the hold over with a newer fence and never shortens the TTL; the
	// earlier lease no longer matches the key.
	if err := l.Extend(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	l2, err := m.TryLock(ctx)
	if err != nil {
		t.Fatalf("re-obtain with the same token: %v", err)
	}
	if l2.Fence() <= l.Fence() || l2.Token() != "my-token" {
		t.Fatalf("re-obtain: fence %d token %q, want a fence above %d", l2.Fence(), l2.Token(), l.Fence())
	}
	if ttl, err := l2.TTL(ctx); err != nil || ttl < 10*time.Second {
		t.Fatalf("re-obtain shortened the TTL to %v (%v)", ttl, err)
	}
	// Another token is still refused.
	if _, err := newMutex(t, c, name, mutex.WithToken("other")).TryLock(ctx); !errors.Is(err, mutex.ErrLocked) {
		t.Fatalf("TryLock with another token: %v", err)
	}
	// The earlier hold is gone: its Release deletes nothing.
	if err := l.Release(ctx); !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("Release of the taken-over hold: %v, want ErrNotHeld", err)
	}
	if held, err := l2.Owned(ctx); err != nil || !held {
		t.Fatalf("after the old hold's Release the re-obtained one is gone (%v, %v)", held, err)
	}
	if err := l2.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestKeyPrefix(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	l, err := newMutex(t, c, "p", mutex.WithKeyPrefix("app1:")).TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(ctx)
	if n, _ := c.Exists(ctx, "app1:{p}", "app1:fence").Result(); n != 2 {
		t.Fatalf("prefixed keys missing (%d of 2)", n)
	}
	// Another prefix is another lock.
	l2, err := newMutex(t, c, "p").TryLock(ctx)
	if err != nil {
		t.Fatalf("default prefix blocked by app1: %v", err)
	}
	l2.Release(ctx)
}

func TestLocked(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	m := newMutex(t, c, uniqueName(t))
	if locked, err := m.Locked(ctx); err != nil || locked {
		t.Fatalf("Locked before: %v %v", locked, err)
	}
	l, _ := m.TryLock(ctx)
	if locked, err := m.Locked(ctx); err != nil || !locked {
		t.Fatalf("Locked while held: %v %v", locked, err)
	}
	l.Release(ctx)
	if locked, _ := m.Locked(ctx); locked {
		t.Fatal("Locked after release")
	}
}

// TestCounterNoLostUpdate: 16 goroutines on separate clients increment a
// counter with GET/SET under the lock; every increment must survive.
func TestCounterNoLostUpdate(t *testing.T) {
	s, c := startRedis(t)
	ctx := context.Background()
	name := uniqueName(t)
	const workers, each = 16, 15
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wc := s.Client(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := mutex.New(wc, name)
			if err != nil {
				t.Error(err)
				return
			}
			for i := 0; i < each; i++ {
				l, err := m.Lock(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				v, _ := wc.Get(ctx, "counter:"+name).Int()
				time.Sleep(100 * time.Microsecond) // widen the race window
				wc.Set(ctx, "counter:"+name, v+1, 0)
				if err := l.Release(ctx); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if v, _ := c.Get(ctx, "counter:"+name).Int(); v != workers*each {
		t.Fatalf("counter = %d, want %d", v, workers*each)
	}
}

func TestMiniredis(t *testing.T) {
	mr := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer c.Close()
	ctx := context.Background()
	m := newMutex(t, c, "mini", mutex.WithTTL(time.Second), mutex.WithAutoRenew(false))
	l, err := m.TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.TryLock(ctx); !errors.Is(err, mutex.ErrLocked) {
		t.Fatalf("second TryLock: %v", err)
	}
	if err := l.Extend(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	if ttl, err := l.TTL(ctx); err != nil || ttl < 1500*time.Millisecond {
		t.Fatalf("TTL after Extend: %v %v", ttl, err)
	}
	got := make(chan error, 1)
	go func() {
		l2, err := m.Lock(ctx)
		if err == nil {
			err = l2.Release(ctx)
		}
		got <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if mr.Exists("redlease:{mini}") {
		t.Fatal("key left")
	}
	// Two acquisitions; the waiter's busy attempts drew fences too.
	if v, _ := mr.Get("redlease:fence"); len(v) == 0 || v == "0" || v == "1" {
		t.Fatalf("fence counter %q, want at least 2", v)
	}
}

func TestRequireRedisEnv(t *testing.T) {
	// The harness must run (not skip) when CI demands a real server.
	if redistest.Required() {
		s := redistest.Start(t)
		if s.Addr == "" {
			t.Fatal("no address")
		}
	}
}

func TestNilContextIsAnError(t *testing.T) {
	mr := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer c.Close()
	m := newMutex(t, c, "nilctx")
	//lint:ignore SA1012 the point of the test
	var nilCtx context.Context
	if _, err := m.Lock(nilCtx); !errors.Is(err, mutex.ErrInvalid) {
		t.Fatalf("Lock(nil): %v", err)
	}
	if _, err := m.TryLock(nilCtx); !errors.Is(err, mutex.ErrInvalid) {
		t.Fatalf("TryLock(nil): %v", err)
	}
	if _, err := m.Locked(nilCtx); !errors.Is(err, mutex.ErrInvalid) {
		t.Fatalf("Locked(nil): %v", err)
	}
	l, err := m.TryLock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Extend(nilCtx, time.Second); !errors.Is(err, mutex.ErrInvalid) {
		t.Fatalf("Extend(nil): %v", err)
	}
	if err := l.Guard(context.Background(), nil); !errors.Is(err, mutex.ErrInvalid) {
		t.Fatalf("Guard(nil fn): %v", err)
	}
	if err := l.Release(nilCtx); err != nil {
		t.Fatalf("Release(nil): %v", err)
	}
	if l.Err() != lease.ErrReleased {
		t.Fatalf("Err = %v", l.Err())
	}
}

// TestNoKeyOutlivesItsName: a name leaves nothing in Redis once its leases
// are released — no per-name fence counter — while fences keep growing
// strictly across names and reacquisitions (one counter per hash slot).
func TestNoKeyOutlivesItsName(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	var last int64
	for i := 0; i < 20; i++ {
		name := fmt.Sprintf("orders:%d", i%7)
		l, err := newMutex(t, c, name).TryLock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if l.Fence() <= last {
			t.Fatalf("fence %d after %d", l.Fence(), last)
		}
		last = l.Fence()
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	all, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0] != "redlease:fence" {
		t.Fatalf("keys after every release: %v, want only the fence counter", all)
	}
}

// TestOneMutexTwoHolders: two acquisitions through one Mutex are two owners:
// each attempt has its own token, so the second finds the key held (it is
// not mistaken for a retry of the first), and releasing one never releases
// the other.
func TestOneMutexTwoHolders(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	m := newMutex(t, c, uniqueName(t))
	l1, err := m.TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.TryLock(ctx); !errors.Is(err, mutex.ErrLocked) {
		t.Fatalf("second TryLock through the same Mutex: %v, want ErrLocked", err)
	}
	got := make(chan error, 1)
	go func() {
		l2, err := m.Lock(ctx)
		if err == nil {
			if l2.Fence() <= l1.Fence() || l2.Token() == l1.Token() {
				err = fmt.Errorf("second holder: fence %d token %s, first: fence %d token %s", l2.Fence(), l2.Token(), l1.Fence(), l1.Token())
			}
			_ = l2.Release(ctx)
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("Lock through the same Mutex returned while the first holds: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := l1.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}
