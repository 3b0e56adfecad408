package revoke

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redlease/redlease/internal/redistest"
)

// counted counts its Revoked calls.
type counted struct{ n atomic.Int32 }

func (c *counted) Revoked(int) { c.n.Add(1) }

// checkLists verifies, under l.mu, that every node listed for a hold belongs
// to a started, not stopped watch, sits at the index of that hold in its
// watch and appears once; and that every watch not stopped is listed once
// per hold.
func checkLists(t *testing.T, l *listener, live map[*Watcher]bool) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	seen := map[*node]bool{}
	for h, head := range l.watches {
		if head == nil {
			t.Errorf("hold %+v listed with an empty list", h)
		}
		for n := head; n != nil; n = n.next {
			if seen[n] {
				t.Errorf("node listed twice (a cycle?) for %+v", h)
				return
			}
			seen[n] = true
			w := n.w
			if w.stopped {
				t.Errorf("a stopped watch is still listed for %+v", h)
			}
			i := -1
			for j := range w.nodes {
				if &w.nodes[j] == n {
					i = j
				}
			}
			if i < 0 || w.holds[i] != h {
				t.Errorf("node of hold index %d listed under %+v", i, h)
			}
		}
	}
	total := 0
	for w := range live {
		total += len(w.holds)
	}
	if len(seen) != total {
		t.Errorf("%d nodes listed, %d holds watched", len(seen), total)
	}
	if l.n != len(live) {
		t.Errorf("l.n = %d, %d watches live", l.n, len(live))
	}
}

// TestReviewListStress: many goroutines start and stop watches whose holds
// overlap (shared holds across watches, a hold twice in one watch, single
// and multi-hold watches) while notices are delivered (published and
// called directly), the subscription is lost and confirmed and tombstone
// checks run. Each watch is told at most once, the lists stay consistent and
// the last Stop empties the map.
func TestReviewListStress(t *testing.T) {
	s := redistest.Start(t)
	c, admin := s.Client(t), s.Client(t)
	ctx := context.Background()
	ch := Channel("t:")
	pool := make([]Hold, 6)
	for i := range pool {
		pool[i] = Hold{Key: fmt.Sprintf("t:{k%d}", i%3), Token: "tok", Fence: int64(i)}
	}
	// A tombstone for one hold, so checks find something.
	if err := admin.Set(ctx, Tombstone(pool[2].Key, pool[2].Token), "2", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	keep := new(Watcher)
	Watch(keep, c, ch, []Hold{{"t:{keep}", "x", 1}}, time.Now(), new(counted))
	l := live(t, c, ch)

	var mu sync.Mutex
	var all []*counted
	// Workers start and stop watches under gate's read lock and record them
	// in liveSet; the checker takes the write lock for a consistent view.
	var gate sync.RWMutex
	liveSet := map[*Watcher]bool{keep: true}
	setLive := func(w *Watcher, on bool) {
		mu.Lock()
		defer mu.Unlock()
		if on {
			liveSet[w] = true
		} else {
			delete(liveSet, w)
		}
	}

	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Add(4)
	go func() { // the lists' structure, mid-run
		defer bg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			gate.Lock()
			checkLists(t, l, liveSet)
			gate.Unlock()
		}
	}()
	go func() { // notices, delivered as the hub would and published
		defer bg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			h := pool[i%len(pool)]
			l.deliver(Notice(h))
			if i%16 == 0 {
				admin.Publish(ctx, ch, Notice(h))
			}
		}
	}()
	go func() { // lost and confirmed, as after a reconnection
		defer bg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			l.lost()
			l.Confirmed()
			time.Sleep(time.Millisecond)
		}
	}()
	go func() { // checks, besides run's
		defer bg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			l.check()
		}
	}()

	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(seed, 1))
			var mine []*Watcher
			for it := 0; it < 300; it++ {
				if len(mine) > 0 && rnd.IntN(2) == 0 {
					j := rnd.IntN(len(mine))
					w := mine[j]
					mine = append(mine[:j], mine[j+1:]...)
					gate.RLock()
					w.Stop()
					setLive(w, false)
					gate.RUnlock()
					if rnd.IntN(4) == 0 {
						w.Stop()
					}
					continue
				}
				n := 1 + rnd.IntN(3)
				w := new(Watcher)
				holds := w.Holds(n)
				for i := range holds {
					holds[i] = pool[rnd.IntN(len(pool))] // may repeat within one watch
				}
				tg := new(counted)
				mu.Lock()
				all = append(all, tg)
				mu.Unlock()
				gate.RLock()
				Watch(w, c, ch, holds, time.Now(), tg)
				setLive(w, true)
				gate.RUnlock()
				mine = append(mine, w)
			}
			for _, w := range mine {
				gate.RLock()
				w.Stop()
				setLive(w, false)
				gate.RUnlock()
			}
		}(uint64(g))
	}
	wg.Wait()
	close(stop)
	bg.Wait()
	checkLists(t, l, map[*Watcher]bool{keep: true})
	for i, tg := range all {
		if n := tg.n.Load(); n > 1 {
			t.Errorf("watch %d told %d times", i, n)
		}
	}
	keep.Stop()
	l.mu.Lock()
	n := len(l.watches)
	l.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d holds still listed after every watch stopped", n)
	}
	waitClosed(t, c, ch)
}
