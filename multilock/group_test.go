package multilock

import (
	"testing"

	"github.com/redlease/redlease/internal/keys"
)

func TestGroupBySlotSortedDeterministic(t *testing.T) {
	var ks []keys.Key
	for _, n := range []string{"b", "a", "user:{7}:x", "user:{7}:y", "z", "c"} {
		k, err := keys.For("redlease:", n)
		if err != nil {
			t.Fatal(err)
		}
		ks = append(ks, k)
	}
	single := group(ks, false)
	if len(single) != 1 || len(single[0]) != len(ks) {
		t.Fatalf("non-cluster grouping: %d groups", len(single))
	}
	groups := group(ks, true)
	last := -1
	seen := 0
	for _, g := range groups {
		slot := g[0].Slot
		if slot <= last {
			t.Fatalf("groups not in ascending slot order: %d after %d", slot, last)
		}
		last = slot
		for i, k := range g {
			if k.Slot != slot {
				t.Fatalf("group mixes slots %d and %d", slot, k.Slot)
			}
			if i > 0 && g[i-1].Name >= k.Name {
				t.Fatalf("names in a group not sorted")
			}
			seen++
		}
	}
	if seen != len(ks) {
		t.Fatalf("grouping lost keys: %d of %d", seen, len(ks))
	}
	// The same set in another order groups identically: one global order.
	rev := make([]keys.Key, len(ks))
	for i := range ks {
		rev[i] = ks[len(ks)-1-i]
	}
	again := group(rev, true)
	for i := range groups {
		for j := range groups[i] {
			if groups[i][j].Name != again[i][j].Name {
				t.Fatal("order depends on the input order")
			}
		}
	}
}
