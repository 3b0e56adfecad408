package multilock_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/multilock"
	"github.com/redlease/redlease/mutex"
)

// TestWaiterMarksBlockingKeyOnly: a busy attempt marks only the key that
// blocked it; the release deletes every key and publishes one wake-up, for
// that key.
func TestWaiterMarksBlockingKeyOnly(t *testing.T) {
	s := redistest.Start(t)
	c, other := s.Client(t), s.Client(t)
	ctx := context.Background()
	ns := names(t, 3)
	for i := range ns {
		ns[i] = "{" + t.Name() + "}" + ns[i] // one hash slot: one script call
	}
	ml, err := multilock.New(c, ns, mutex.WithAutoRenew(false))
	if err != nil {
		t.Fatal(err)
	}
	l, err := ml.TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if f := l.FenceOf(ns[1]); f != l.FenceOf(ns[0])+1 || l.FenceOf(ns[2]) != f+1 {
		t.Fatalf("fences %d %d %d, want consecutive", l.FenceOf(ns[0]), f, l.FenceOf(ns[2]))
	}
	w, err := multilock.New(other, ns[1:])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.TryLock(ctx); !errors.Is(err, mutex.ErrLocked) {
		t.Fatalf("TryLock of a held set: %v, want ErrLocked", err)
	}
	for i, n := range ns {
		v, err := c.Get(ctx, lockKey(n)).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got, want := strings.Contains(v, "w:"), i == 1; got != want {
			t.Errorf("%s holds %q: marked %v, want %v", n, v, got, want)
		}
	}
	before, err := redistest.CommandCalls(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	after, err := redistest.CommandCalls(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if n := after["spublish"] - before["spublish"] + after["publish"] - before["publish"]; n != 1 {
		t.Fatalf("release: %d wake-up messages, want 1 (the marked key's)", n)
	}
	if n, _ := c.Exists(ctx, lockKey(ns[0]), lockKey(ns[1]), lockKey(ns[2])).Result(); n != 0 {
		t.Fatalf("%d keys left after release", n)
	}
}
