package keys

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSlotKnownValues(t *testing.T) {
	// Values from the Redis Cluster specification and CLUSTER KEYSLOT.
	cases := map[string]int{"123456789": 12739, "foo": 12182, "{user1000}.following": 3443, "{user1000}.followers": 3443, "foo{}{bar}": 8363}
	for k, want := range cases {
		if got := Slot(k); got != want {
			t.Errorf("Slot(%q) = %d, want %d", k, got, want)
		}
	}
}

func TestForSharesSlot(t *testing.T) {
	for _, name := range []string{"a", "orders:42", "x{y}z", "{", "a}b", "中文", "with space"} {
		k, err := For("redlease:", name)
		if err != nil {
			t.Fatalf("For(%q): %v", name, err)
		}
		if Slot(k.Wake) != k.Slot || Slot(k.Lock) != k.Slot {
			t.Errorf("name %q: keys in different slots: %+v", name, k)
		}
	}
}

func TestForRefusesEmptyTag(t *testing.T) {
	for _, c := range []struct{ prefix, name string }{{"redlease:", ""}, {"redlease:", "}x"}, {"a{}", "x"}} {
		if _, err := For(c.prefix, c.name); err == nil {
			t.Errorf("For(%q, %q): no error", c.prefix, c.name)
		}
	}
}

func FuzzFor(f *testing.F) {
	for _, s := range []string{"a", "{", "}", "{}", "a{b}c", "}{", ""} {
		f.Add("redlease:", s)
	}
	f.Fuzz(func(t *testing.T, prefix, name string) {
		k, err := For(prefix, name)
		if err != nil {
			return
		}
		if f, ok := FenceKey(prefix, k.Slot, true); !ok || Slot(f) != k.Slot || Slot(k.Lock) != Slot(k.Wake) {
			t.Fatalf("prefix %q name %q: lock/fence/wake in different slots", prefix, name)
		}
	})
}

func TestFenceKeySharesSlot(t *testing.T) {
	for _, prefix := range []string{"redlease:", "app{x}:", "a{", "a}", "x{ab"} {
		for _, name := range []string{"a", "orders:42", "中文", "x{y}z"} {
			k, err := For(prefix, name)
			if err != nil {
				continue
			}
			f, ok := FenceKey(prefix, k.Slot, true)
			if !ok || Slot(f) != k.Slot || f == k.Lock {
				t.Errorf("FenceKey(%q, %d) = %q, %v (lock key %q)", prefix, k.Slot, f, ok, k.Lock)
			}
		}
	}
	if f, _ := FenceKey("redlease:", 5, false); f != "redlease:fence" {
		t.Errorf("single-node fence key %q", f)
	}
}
