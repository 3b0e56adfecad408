package multilock_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redlease/redlease/internal/leaktest"
	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/multilock"
	"github.com/redlease/redlease/mutex"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }

var seq atomic.Int64

func names(t *testing.T, n int) []string {
	base := fmt.Sprintf("%s-%d", t.Name(), seq.Add(1))
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%c", base, 'a'+i)
	}
	return out
}

func lockKey(name string) string { return "redlease:{" + name + "}" }

func TestNewRejectsBadInput(t *testing.T) {
	mr := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer c.Close()
	for _, tc := range []struct {
		client redis.UniversalClient
		names  []string
		opts   []mutex.Option
		want   string
	}{
		{nil, []string{"a"}, nil, "client is nil"},
		{c, nil, nil, "at least one name"},
		{c, []string{}, nil, "at least one name"},
		{c, []string{"a", ""}, nil, "must not be empty"},
		{c, []string{"a"}, []mutex.Option{mutex.WithTTL(0)}, "TTL 0s"},
	} {
		_, err := multilock.New(tc.client, tc.names, tc.opts...)
		if !errors.Is(err, mutex.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%v, %q): %v, want ErrInvalid mentioning %q", tc.client, tc.names, err, tc.want)
		}
	}
}

func TestDuplicatesMergedAndOrdered(t *testing.T) {
	mr := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer c.Close()
	ml, err := multilock.New(c, []string{"c", "a", "b", "a", "c"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ml.Names(), ","); got != "a,b,c" {
		t.Fatalf("Names() = %s, want a,b,c", got)
	}
	l, err := ml.TryLock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(context.Background())
	if l.FenceOf("a") != 1 || l.FenceOf("b") != 2 || l.FenceOf("c") != 3 || l.FenceOf("zzz") != 0 || l.Fence() != l.FenceOf("a") {
		t.Fatalf("fences a=%d b=%d Fence=%d", l.FenceOf("a"), l.FenceOf("b"), l.Fence())
	}
}

func TestAllOrNothing(t *testing.T) {
	s := redistest.Start(t)
	c := s.Client(t)
	ctx := context.Background()
	ns := names(t, 4)
	// Another owner holds the third name.
	other, _ := mutex.New(c, ns[2])
	ol, err := other.TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ml, _ := multilock.New(c, ns)
	_, err = ml.TryLock(ctx)
	if !errors.Is(err, mutex.ErrLocked) || !strings.Contains(err.Error(), ns[2]) {
		t.Fatalf("TryLock: %v, want ErrLocked naming %q", err, ns[2])
	}
	for _, n := range []string{ns[0], ns[1], ns[3]} {
		if x, _ := c.Exists(ctx, lockKey(n)).Result(); x != 0 {
			t.Fatalf("%q held after a failed TryLock", n)
		}
	}
	// Lock with a deadline fails the same way and leaves nothing.
	dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := ml.Lock(dctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock: %v", err)
	}
	for _, n := range []string{ns[0], ns[1], ns[3]} {
		if x, _ := c.Exists(ctx, lockKey(n)).Result(); x != 0 {
			t.Fatalf("%q held after a failed Lock", n)
		}
	}
	// A waiting Lock is woken by the mutex's release.
	done := make(chan *lease.Lease, 1)
	go func() {
		l, err := ml.Lock(ctx)
		if err != nil {
			t.Error(err)
		}
		done <- l
	}()
	time.Sleep(50 * time.Millisecond)
	ol.Release(ctx)
	l := <-done
	if l == nil {
		t.FailNow()
	}
	// And now the mutex is blocked by the MultiLock.
	if _, err := other.TryLock(ctx); !errors.Is(err, mutex.ErrLocked) {
		t.Fatalf("mutex TryLock on a name held by a MultiLock: %v", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		if x, _ := c.Exists(ctx, lockKey(n)).Result(); x != 0 {
			t.Fatalf("%q held after Release", n)
		}
	}
}

// TestOneScriptCallPerAcquisition: an N-key same-slot set is taken by one
// script call and released by one.
func TestOneScriptCallPerAcquisition(t *testing.T) {
	s := redistest.Start(t)
	c := s.Client(t)
	ctx := context.Background()
	// Load the scripts once so the counts below are not EVAL fallbacks.
	for _, n := range []int{1, 2} { // one key and several run different scripts
		warm, _ := multilock.New(c, names(t, n))
		if l, err := warm.TryLock(ctx); err == nil {
			l.Release(ctx)
		}
	}
	for _, n := range []int{1, 4, 16} {
		ml, _ := multilock.New(c, names(t, n), mutex.WithAutoRenew(false))
		before, _ := redistest.CommandCalls(ctx, c)
		l, err := ml.TryLock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		mid, _ := redistest.CommandCalls(ctx, c)
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		after, _ := redistest.CommandCalls(ctx, c)
		acq := mid["evalsha"] + mid["eval"] - before["evalsha"] - before["eval"]
		rel := after["evalsha"] + after["eval"] - mid["evalsha"] - mid["eval"]
		if acq != 1 || rel != 1 {
			t.Fatalf("%d keys: %d script calls to acquire, %d to release; want 1 and 1", n, acq, rel)
		}
		if sets := mid["set"] - before["set"]; sets != int64(n) {
			t.Fatalf("%d keys: %d SETs inside the script", n, sets)
		}
	}
}

// TestRandomOverlappingSets: 8 goroutines on separate clients lock random
// 2–4 of 6 names; per-name exclusivity holds and everyone makes progress.
func TestRandomOverlappingSets(t *testing.T) {
	s := redistest.Start(t)
	ctx := context.Background()
	pool := names(t, 6)
	var holders [6]atomic.Int32
	var violations atomic.Int64
	progress := make([]int, 8)
	stop := time.Now().Add(3 * time.Second)
	if testing.Short() {
		stop = time.Now().Add(time.Second)
	}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		c := s.Client(t)
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(w)))
			for time.Now().Before(stop) {
				idx := r.Perm(6)[:2+r.Intn(3)]
				set := make([]string, len(idx))
				for i, j := range idx {
					set[i] = pool[j]
				}
				ml, err := multilock.New(c, set, mutex.WithTTL(5*time.Second))
				if err != nil {
					t.Error(err)
					return
				}
				lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				l, err := ml.Lock(lctx)
				cancel()
				if err != nil {
					t.Errorf("worker %d: %v", w, err)
					return
				}
				for _, j := range idx {
					if holders[j].Add(1) != 1 {
						violations.Add(1)
					}
				}
				time.Sleep(time.Duration(r.Intn(500)) * time.Microsecond)
				for _, j := range idx {
					holders[j].Add(-1)
				}
				if err := l.Release(ctx); err != nil {
					t.Errorf("release: %v", err)
				}
				progress[w]++
			}
		}(w)
	}
	wg.Wait()
	if v := violations.Load(); v != 0 {
		t.Fatalf("%d exclusivity violations", v)
	}
	for w, p := range progress {
		if p == 0 {
			t.Fatalf("worker %d made no progress (%v)", w, progress)
		}
	}
	t.Logf("acquisitions per worker: %v", progress)
}

// TestTransfers: 1,000 random transfers among 10 accounts by 8 workers, each
// holding both accounts' locks; the total is conserved, no balance goes
// negative, and opposite transfers never deadlock.
func TestTransfers(t *testing.T) {
	s := redistest.Start(t)
	ctx := context.Background()
	admin := s.Client(t)
	base := names(t, 1)[0]
	const accounts, initial, transfers, workers = 10, 100, 1000, 8
	acct := func(i int) string { return fmt.Sprintf("%s-acct%d", base, i) }
	for i := 0; i < accounts; i++ {
		admin.Set(ctx, "balance:"+acct(i), initial, 0)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		c := s.Client(t)
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(w) + 99))
			for next.Add(1) <= transfers {
				from, to := r.Intn(accounts), r.Intn(accounts-1)
				if to >= from {
					to++
				}
				ml, _ := multilock.New(c, []string{acct(from), acct(to)})
				l, err := ml.Lock(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				fb, _ := c.Get(ctx, "balance:"+acct(from)).Int()
				tb, _ := c.Get(ctx, "balance:"+acct(to)).Int()
				amount := r.Intn(30) + 1
				if amount <= fb {
					c.Set(ctx, "balance:"+acct(from), fb-amount, 0)
					c.Set(ctx, "balance:"+acct(to), tb+amount, 0)
				}
				if err := l.Release(ctx); err != nil {
					t.Error(err)
				}
			}
		}(w)
	}
	wg.Wait()
	total := 0
	for i := 0; i < accounts; i++ {
		b, _ := admin.Get(ctx, "balance:"+acct(i)).Int()
		if b < 0 {
			t.Fatalf("account %d negative: %d", i, b)
		}
		total += b
	}
	if total != accounts*initial {
		t.Fatalf("total %d, want %d", total, accounts*initial)
	}
}

func TestLeaseCoversAllKeys(t *testing.T) {
	s := redistest.Start(t)
	c := s.Client(t)
	ctx := context.Background()
	ns := names(t, 3)
	ml, _ := multilock.New(c, ns, mutex.WithTTL(time.Second), mutex.WithRenewInterval(30*time.Millisecond))
	l, err := ml.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Refresh(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		if ttl, _ := c.PTTL(ctx, lockKey(n)).Result(); ttl < 4*time.Second {
			t.Fatalf("%q TTL %v after Refresh(5s)", n, ttl)
		}
	}
	// Losing one member ends the lease and Err names it.
	c.Del(ctx, lockKey(ns[1]))
	select {
	case <-l.Lost():
	case <-time.After(3 * time.Second):
		t.Fatal("Lost not closed after a member key vanished")
	}
	if !errors.Is(l.Err(), lease.ErrNotHeld) || !strings.Contains(l.Err().Error(), ns[1]) {
		t.Fatalf("Err = %v, want ErrNotHeld naming %q", l.Err(), ns[1])
	}
	if err := l.Release(ctx); !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("Release: %v", err)
	}
	for _, n := range ns {
		// Release after the loss of one member frees the others.
		if x, _ := c.Exists(ctx, lockKey(n)).Result(); x != 0 {
			t.Fatalf("%q still exists after the Release", n)
		}
	}
}
