package core

import (
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/redlease/redlease/internal/leaktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }

func TestParseAcquire(t *testing.T) {
	f, busy, _, err := ParseAcquire([]any{int64(1), int64(7), int64(9)}, 2)
	if err != nil || busy != 0 || len(f) != 2 || f[0] != 7 || f[1] != 9 {
		t.Fatalf("success reply: %v %d %v", f, busy, err)
	}
	_, busy, pttl, err := ParseAcquire([]any{int64(0), int64(1500), int64(2)}, 2)
	if err != nil || busy != 2 || pttl != 1500*time.Millisecond {
		t.Fatalf("busy reply: %d %v %v", busy, pttl, err)
	}
	for _, bad := range []any{nil, "x", []any{}, []any{"1"}, []any{int64(1)}, []any{int64(1), int64(0), int64(1)}, []any{int64(1), int64(-1), int64(1)},
		[]any{int64(0), int64(5)}, []any{int64(0), int64(5), int64(3)}, []any{int64(2), int64(1), int64(1)}} {
		if _, _, _, err := ParseAcquire(bad, 2); !errors.Is(err, ErrReply) {
			t.Errorf("ParseAcquire(%v): %v, want ErrReply", bad, err)
		}
	}
}

// FuzzParseReplies feeds script replies of arbitrary shape to the parsers:
// they must return ErrReply or a consistent result, never panic.
func FuzzParseReplies(f *testing.F) {
	f.Add([]byte{1, 7, 9}, 2, false)
	f.Add([]byte{0, 200, 1}, 1, false)
	f.Add([]byte{}, 0, true)
	f.Fuzz(func(t *testing.T, data []byte, n int, asString bool) {
		arr := make([]any, len(data))
		for i, b := range data {
			if asString && i%2 == 1 {
				arr[i] = string(rune(b))
			} else {
				arr[i] = int64(int8(b))
			}
		}
		if n < 0 || n > 64 {
			n = n & 63
		}
		fences, busy, _, err := ParseAcquire(arr, n)
		if err == nil {
			if busy == 0 && len(fences) != n {
				t.Fatalf("%d fences for %d keys", len(fences), n)
			}
			if busy < 0 || busy > n {
				t.Fatalf("busy index %d of %d", busy, n)
			}
			for _, f := range fences {
				if f <= 0 {
					t.Fatalf("fence %d accepted", f)
				}
			}
		} else if !errors.Is(err, ErrReply) {
			t.Fatalf("error %v does not wrap ErrReply", err)
		}
		if _, _, err := ParsePair(arr); err != nil && !errors.Is(err, ErrReply) {
			t.Fatalf("ParsePair error %v does not wrap ErrReply", err)
		}
	})
}

func TestHolds(t *testing.T) {
	cases := []struct {
		v, token string
		want     bool
	}{
		{"1:0:abc", "abc", true},
		{"12:3:a:b", "a:b", true},
		{"12:3:a:b", "b", false},
		{"12:3:a:b", "3:a:b", false},
		{"abc", "abc", false},
		{"x:0:abc", "abc", false},
		{"1::abc", "abc", false},
		{":0:abc", "abc", false},
		{"1:0:", "", true},
		{"", "", false},
		// The waiter mark after the generation.
		{"1:0w:abc", "abc", true},
		{"12:3w:w:b", "w:b", true},
		{"1:0w:abc", "w:abc", false},
		{"1:w:abc", "abc", false},
		{"1:0ww:abc", "abc", false},
		{"1w:0:abc", "abc", false},
	}
	if !HoldsFence("12:3:a:b", "a:b", 12) || HoldsFence("12:3:a:b", "a:b", 1) || !HoldsFence("12:3w:a:b", "a:b", 12) {
		t.Error("HoldsFence")
	}
	for _, c := range []struct {
		v, token string
		fence    int64
	}{{"7:2w:a:b", "a:b", 7}, {"7:2:a:b", "a:b", 7}, {"7:w:a", "7:w:a", 0}} {
		if tok, f := splitHold(c.v); tok != c.token || f != c.fence {
			t.Errorf("splitHold(%q) = %q, %d, want %q, %d", c.v, tok, f, c.token, c.fence)
		}
	}
	for _, c := range cases {
		if got := Holds(c.v, c.token); got != c.want {
			t.Errorf("Holds(%q, %q) = %v, want %v", c.v, c.token, got, c.want)
		}
	}
}
