package revoke

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redlease/redlease/internal/leaktest"
	"github.com/redlease/redlease/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }

// within bounds every wait here; reaching it means a hang, not slowness.
const within = 10 * time.Second

func TestNoticeRoundTrip(t *testing.T) {
	for _, h := range []Hold{
		{Key: "redlease:{a}", Token: "0123abcd", Fence: 7},
		{Key: "p:{x:y}:sem", Token: "to:ken\n:with:colons", Fence: 1 << 40},
		{Key: "", Token: "", Fence: 0},
	} {
		got, ok := parse(Notice(h))
		if !ok || got != h {
			t.Fatalf("parse(Notice(%+v)) = %+v, %v", h, got, ok)
		}
	}
	for _, bad := range []string{"", "7", "7:", "x:1:ab", "7:9:short", "7:-1:x"} {
		if h, ok := parse(bad); ok {
			t.Fatalf("parse(%q) = %+v, want refused", bad, h)
		}
	}
}

// fired collects revocation callbacks.
type fired chan int

func (f fired) Revoked(i int) { f <- i }

func (f fired) wait(t *testing.T, want int) {
	t.Helper()
	select {
	case i := <-f:
		if i != want {
			t.Fatalf("revoked(%d), want revoked(%d)", i, want)
		}
	case <-time.After(within):
		t.Fatal("revoked was not called")
	}
}

func (f fired) none(t *testing.T) {
	t.Helper()
	select {
	case i := <-f:
		t.Fatalf("revoked(%d) called", i)
	case <-time.After(100 * time.Millisecond):
	}
}

func live(t *testing.T, c redis.UniversalClient, channel string) *listener {
	t.Helper()
	registryMu.Lock()
	l := registry[listenerKey{c, channel}]
	registryMu.Unlock()
	deadline := time.Now().Add(within)
	for {
		l.mu.Lock()
		ok := l.live && !l.pending
		l.mu.Unlock()
		if ok {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatal("the subscription was never confirmed")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitClosed(t *testing.T, c redis.UniversalClient, channel string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for Listening(c, channel) {
		if time.Now().After(deadline) {
			t.Fatal("the listener stayed open after its last watch stopped")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNotice: a notice for a watched hold calls revoked once; a notice for
// another fence of the same key and token does not.
func TestNotice(t *testing.T) {
	s := redistest.Start(t)
	c, admin := s.Client(t), s.Client(t)
	ctx := context.Background()
	ch := Channel("t:")
	holds := []Hold{{"t:{a}", "tok", 3}, {"t:{b}", "tok", 4}}
	f := make(fired, 2)
	w := new(Watcher)
	already := Watch(w, c, ch, holds, time.Now(), f)
	if already != -1 {
		t.Fatalf("already = %d", already)
	}
	live(t, c, ch)
	admin.Publish(ctx, ch, Notice(Hold{"t:{b}", "tok", 5}))
	f.none(t)
	admin.Publish(ctx, ch, Notice(holds[1]))
	f.wait(t, 1)
	admin.Publish(ctx, ch, Notice(holds[0]))
	f.none(t) // at most once per watch
	w.Stop()
	w.Stop()
	waitClosed(t, c, ch)
}

// TestNoticeBeforeWatch: a notice that arrives before its hold is watched
// (the acquisition's reply still on its way) is found by Watch.
func TestNoticeBeforeWatch(t *testing.T) {
	s := redistest.Start(t)
	c, admin := s.Client(t), s.Client(t)
	ctx := context.Background()
	ch := Channel("t:")
	keep := new(Watcher)
	Watch(keep, c, ch, []Hold{{"t:{other}", "x", 1}}, time.Now(), make(fired, 1))
	defer keep.Stop()
	l := live(t, c, ch)
	h := Hold{"t:{a}", "tok", 9}
	admin.Publish(ctx, ch, Notice(h))
	deadline := time.Now().Add(within)
	for {
		l.mu.Lock()
		_, ok := l.recent[h]
		l.mu.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the notice never arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}
	f := make(fired, 1)
	w := new(Watcher)
	already := Watch(w, c, ch, []Hold{{"t:{z}", "tok", 1}, h}, time.Now(), f)
	defer w.Stop()
	if already != 1 {
		t.Fatalf("already = %d, want 1", already)
	}
	admin.Publish(ctx, ch, Notice(h))
	f.none(t)
}

// TestTombstoneBeforeConfirmed: a revocation published before the
// subscription was confirmed is found by its tombstone.
func TestTombstoneBeforeConfirmed(t *testing.T) {
	s := redistest.Start(t)
	c, admin := s.Client(t), s.Client(t)
	ctx := context.Background()
	ch := Channel("t:")
	h := Hold{"t:{a}", "tok", 12}
	if err := admin.Set(ctx, Tombstone(h.Key, h.Token), "11", time.Minute).Err(); err != nil { // another fence
		t.Fatal(err)
	}
	f := make(fired, 1)
	w := new(Watcher)
	Watch(w, c, ch, []Hold{h}, time.Now(), f)
	live(t, c, ch)
	f.none(t)
	w.Stop()
	waitClosed(t, c, ch)

	admin.Set(ctx, Tombstone(h.Key, h.Token), "12", time.Minute)
	w = new(Watcher)
	Watch(w, c, ch, []Hold{{"t:{b}", "x", 1}, h}, time.Now(), f)
	defer w.Stop()
	f.wait(t, 1)
}

// TestReconnectChecksAll: after the subscription connection is killed, a
// notice published meanwhile is lost, and the reconfirmed subscription
// checks every watch's tombstones.
func TestReconnectChecksAll(t *testing.T) {
	s := redistest.Start(t)
	c, admin := s.Client(t), s.Client(t)
	ctx := context.Background()
	ch := Channel("t:")
	h := Hold{"t:{a}", "tok", 5}
	f := make(fired, 1)
	w := new(Watcher)
	Watch(w, c, ch, []Hold{h}, time.Now(), f)
	defer w.Stop()
	live(t, c, ch)
	// A revocation whose notice was lost: only its tombstone remains.
	admin.Set(ctx, Tombstone(h.Key, h.Token), "5", time.Minute)
	f.none(t)
	if err := admin.Do(ctx, "client", "kill", "type", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	f.wait(t, 0)
}

// TestTombstoneUnambiguous: crafted names and custom tokens cannot make a
// tombstone equal another hold's tombstone or any lock, hash or fence key.
func TestTombstoneUnambiguous(t *testing.T) {
	// The lock key of name "a}:revoked:x" is "p{a}:revoked:x}".
	if a, b := Tombstone("p{a}", "x}:revoked:y"), Tombstone("p{a}:revoked:x}", "y"); a == b {
		t.Errorf("two holds share the tombstone %q", a)
	}
	// A semaphore named "n}:sem:revoked:k" has the hash "p{n}:sem:revoked:k}:sem".
	if a, key := Tombstone("p{n}:sem", "k}:sem"), "p{n}:sem:revoked:k}:sem"; a == key {
		t.Errorf("a tombstone equals the hash key %q", key)
	}
	for _, tok := range []string{"x}", "y}:sem", "z}:rw", "w:fence", ""} {
		ts := Tombstone("p{a}", tok)
		for _, suffix := range []string{"}", ":sem", ":rw", "fence"} {
			if strings.HasSuffix(ts, suffix) {
				t.Errorf("tombstone %q ends like a key (%q)", ts, suffix)
			}
		}
	}
}

// TestSharedHoldList: several watches of one hold are linked in one list;
// stopping one in the middle, at the head or at the tail leaves the others
// told, and the last Stop empties the listener's map.
func TestSharedHoldList(t *testing.T) {
	s := redistest.Start(t)
	c, admin := s.Client(t), s.Client(t)
	ctx := context.Background()
	ch := Channel("t:")
	h := Hold{"t:{s}", "tok", 9}
	var ws [4]*Watcher
	fs := make([]fired, len(ws))
	for i := range ws {
		fs[i] = make(fired, 1)
		ws[i] = new(Watcher)
		holds := ws[i].Holds(1)
		holds[0] = h
		if already := Watch(ws[i], c, ch, holds, time.Now(), fs[i]); already != -1 {
			t.Fatalf("already = %d", already)
		}
	}
	l := live(t, c, ch)
	ws[1].Stop() // the middle of the list (watches are pushed at its head)
	ws[3].Stop() // its head
	if err := admin.Publish(ctx, ch, Notice(h)).Err(); err != nil {
		t.Fatal(err)
	}
	fs[0].wait(t, 0)
	fs[2].wait(t, 0)
	fs[1].none(t)
	fs[3].none(t)
	ws[0].Stop() // the tail
	ws[2].Stop()
	ws[2].Stop() // idempotent
	l.mu.Lock()
	n := len(l.watches)
	l.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d holds still listed after every watch stopped", n)
	}
	waitClosed(t, c, ch)
}
