package wake

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redlease/redlease/internal/keys"
	"github.com/redlease/redlease/internal/redistest"
)

// events records what an Interest is told, in order.
type events chan string

func (e events) Message(payload string) { e <- "message " + payload }
func (e events) Confirmed()             { e <- "confirmed" }
func (e events) Lost()                  { e <- "lost" }

func (e events) next(t *testing.T, want string) {
	t.Helper()
	for {
		select {
		case got := <-e:
			if got == "confirmed" && want != "confirmed" {
				continue // a repeated confirmation is allowed anywhere
			}
			if got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
			return
		case <-time.After(hangGuard):
			t.Fatalf("no %q", want)
		}
	}
}

// TestInterestSharesConnection: an Interest's channel and a waiter's channel
// use one subscription connection; the Interest gets its messages and, after
// the connection is killed, Lost then Confirmed, while the waiter is woken;
// the connection stays open while either remains and closes after both.
func TestInterestSharesConnection(t *testing.T) {
	srv := redistest.Start(t)
	c, admin := srv.Client(t), srv.Client(t)
	ctx := context.Background()
	chs := channels(t, 2)
	ev := make(events, 16)
	in := Listen(c, chs[1], ev)
	ev.next(t, "confirmed")
	w := Join(ctx, c, chs[0], 0)
	redistest.WaitSubscribed(t, admin, chs[0], chs[1])
	if _, subs := redistest.Connections(t, admin); subs != 1 {
		t.Fatalf("%d subscribed connections, want 1", subs)
	}
	if err := admin.Publish(ctx, chs[1], "hello").Err(); err != nil {
		t.Fatal(err)
	}
	ev.next(t, "message hello")

	if err := admin.Do(ctx, "client", "kill", "type", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	ev.next(t, "lost")
	ev.next(t, "confirmed")
	select {
	case <-w.Woken(): // the reconnect wakes the head
	case <-time.After(hangGuard):
		t.Fatal("head not woken after the reconnect")
	}

	// The waiter leaves: the Interest keeps the connection past Linger.
	w.Leave(false)
	time.Sleep(2 * Linger)
	if lookup(c) == nil {
		t.Fatal("hub closed while an Interest remained")
	}
	if err := admin.Publish(ctx, chs[1], "still").Err(); err != nil {
		t.Fatal(err)
	}
	ev.next(t, "message still")
	in.Stop()
	in.Stop()
	waitClosed(t, c)
	for deadline := time.Now().Add(hangGuard); ; time.Sleep(5 * time.Millisecond) {
		_, subs := redistest.Connections(t, admin)
		if subs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d subscribed connections after Stop, want 0", subs)
		}
	}
}

// TestInterestOutlivedByWaiter: stopping an Interest while a waiter remains
// unsubscribes only its channel.
func TestInterestOutlivedByWaiter(t *testing.T) {
	srv := redistest.Start(t)
	c, admin := srv.Client(t), srv.Client(t)
	ctx := context.Background()
	chs := channels(t, 2)
	ev := make(events, 16)
	in := Listen(c, chs[1], ev)
	w := Join(ctx, c, chs[0], 0)
	ev.next(t, "confirmed")
	in.Stop()
	deadline := time.Now().Add(hangGuard)
	for {
		n, err := admin.PubSubNumSub(ctx, chs[1]).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n[chs[1]] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the Interest's channel stayed subscribed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := admin.SPublish(ctx, chs[0], "token").Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.Woken():
	case <-time.After(hangGuard):
		t.Fatal("waiter not woken by a publish")
	}
	w.Leave(false)
	waitClosed(t, c)
}

// TestInterestClusterRidesOnShard: on Redis Cluster an Interest created
// while a shard connection exists uses it, though its channel's slot is on
// another master; after that connection is killed (go-redis then reconnects
// to the classic channel's node, where the shard's SSUBSCRIBE is refused
// with MOVED) both the Interest and the waiter are served again.
func TestInterestClusterRidesOnShard(t *testing.T) {
	cl := redistest.StartCluster(t, 3, 0)
	c := cl.Client(t)
	ctx := context.Background()
	interest := t.Name() + ":revoked"
	var wakeCh string
	for i := 0; ; i++ {
		wakeCh = fmt.Sprintf("{%s:%d}:wake", t.Name(), i)
		if cl.MasterOf(keys.Slot(wakeCh)) != cl.MasterOf(keys.Slot(interest)) {
			break
		}
	}
	w := Join(ctx, c, wakeCh, keys.Slot(wakeCh))
	select {
	case <-w.q.ready:
	case <-time.After(hangGuard):
		t.Fatal("shard subscription not confirmed")
	}
	ev := make(events, 16)
	in := Listen(c, interest, ev)
	ev.next(t, "confirmed")
	subscribed := 0
	for _, m := range cl.Masters() {
		_, n := redistest.Connections(t, m.Client(t))
		subscribed += n
	}
	if subscribed != 1 {
		t.Fatalf("%d subscribed connections in the cluster, want 1", subscribed)
	}
	if err := c.Publish(ctx, interest, "one").Err(); err != nil {
		t.Fatal(err)
	}
	ev.next(t, "message one")

	shard := cl.MasterOf(keys.Slot(wakeCh)).Client(t)
	if err := shard.Do(ctx, "client", "kill", "type", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	ev.next(t, "lost")
	// The reconnect may be refused with MOVED and rebound: Lost and
	// Confirmed may repeat, but a message comes after a Confirmed.
	last := "lost"
	for deadline := time.Now().Add(hangGuard); last != "message two"; {
		if err := c.Publish(ctx, interest, "two").Err(); err != nil {
			t.Fatal(err)
		}
		select {
		case e := <-ev:
			if e == "message two" && last != "confirmed" {
				t.Fatalf("message after %q, want after confirmed", last)
			}
			last = e
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no message after the reconnect")
		}
	}
	// Drain the wake-up a reconnect gives, then a release must still arrive.
	deadline := time.Now().Add(hangGuard)
	for {
		if err := c.SPublish(ctx, wakeCh, "token").Err(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-w.Woken():
		case <-time.After(100 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("waiter not woken after the reconnect")
			}
			continue
		}
		break
	}
	select {
	case <-w.Woken():
	default:
	}
	if err := c.SPublish(ctx, wakeCh, "token").Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.Woken():
	case <-time.After(hangGuard):
		t.Fatal("waiter not woken by a release after the reconnect")
	}
	w.Leave(false)
	in.Stop()
	waitClosed(t, c)
}
