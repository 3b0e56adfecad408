package core

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/internal/scripts"
)

// TestHandoffScriptMark: handoff.lua hands an unmarked hold over even while
// another process subscribes (no waiter tried it), and releases a marked one
// with a wake-up when another process subscribes; a busy acquire1 marks the
// hold and keeps its TTL.
func TestHandoffScriptMark(t *testing.T) {
	s := redistest.Start(t)
	c := s.Client(t)
	ctx := context.Background()
	keys := []string{"redlease:{hm}", "redlease:fence"}
	channel := "redlease:{hm}:wake"
	sub := s.Client(t).SSubscribe(ctx, channel) // another process's waiter
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	msgs := sub.Channel()
	own := c.SSubscribe(ctx, channel) // the releasing process listens too (its waiter)
	defer own.Close()
	if _, err := own.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	handoff := func(tok string, fence int64, hand string) []any {
		t.Helper()
		r, err := scripts.Handoff.Run(ctx, c, keys, tok, fence, hand, 5000, channel).Slice()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	f, err := scripts.Acquire1.Run(ctx, c, keys, "holder", 60000, "0").Int64()
	if err != nil || f <= 0 {
		t.Fatalf("acquire: %d %v", f, err)
	}
	r := handoff("holder", f, "hand1")
	if len(r) != 2 || r[0] != int64(2) {
		t.Fatalf("handoff of an unmarked hold: %v, want {2, fence}", r)
	}
	f = r[1].(int64)
	// A busy attempt marks the handed hold, keeping its TTL.
	if b, err := scripts.Acquire1.Run(ctx, c, keys, "other", 60000, "0").Int64(); err != nil || b >= -2 || b < -2-5000 {
		t.Fatalf("busy attempt: %d %v, want -2 - pttl (≤ 5 s)", b, err)
	}
	if v := c.Get(ctx, keys[0]).Val(); !strings.Contains(v, ":0w:") || !HoldsFence(v, "hand1", f) {
		t.Fatalf("after a busy attempt the key holds %q, want hand1's hold, marked", v)
	}
	if ms := c.PTTL(ctx, keys[0]).Val(); ms > 5*time.Second {
		t.Fatalf("marking changed the TTL to %v", ms)
	}
	if r := handoff("hand1", f, "hand2"); len(r) != 1 || r[0] != int64(1) {
		t.Fatalf("handoff of a marked hold with another subscriber: %v, want {1}", r)
	}
	select {
	case m := <-msgs:
		if want := strings.TrimSpace(m.Payload); !strings.HasSuffix(want, ":hand1") {
			t.Fatalf("wake-up %q, want <fence>:hand1", m.Payload)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up for the marked hold")
	}
	if n := c.Exists(ctx, keys[0]).Val(); n != 0 {
		t.Fatal("the marked hold was not released")
	}
}
