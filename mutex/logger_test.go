package mutex_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

// syncBuffer is a buffer a handler writes from the lease's goroutines while
// the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// records returns the JSON records written so far.
func (b *syncBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("record %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

func newLogger(buf *syncBuffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func waitEnded(t *testing.T, l *lease.Lease) {
	t.Helper()
	select {
	case <-l.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("lease not lost within 5s")
	}
}

// TestLoggerExpired: a lease that expires (auto-renewal off) logs one Warn
// "lease lost" with its name, fence and reason; a Release that follows
// logs nothing more.
func TestLoggerExpired(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	var buf syncBuffer
	name := uniqueName(t)
	m := newMutex(t, c, name, mutex.WithLogger(newLogger(&buf)), mutex.WithAutoRenew(false), mutex.WithTTL(100*time.Millisecond))
	l, err := m.TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitEnded(t, l)
	l.Release(ctx)
	recs := buf.records(t)
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1: %v", len(recs), recs)
	}
	r := recs[0]
	if r["level"] != "WARN" || r["msg"] != "redlease: lease lost" || r["name"] != name || r["kind"] != "mutex" ||
		r["fence"] != float64(l.Fence()) || r["reason"] != "expired" {
		t.Errorf("record %v: want WARN lease lost, name %s, kind mutex, fence %d, reason expired", r, name, l.Fence())
	}
}

// TestLoggerRenewalFailed: a renewal that finds the key gone logs a Warn
// "lease renewal failed" with the error, and the loss.
func TestLoggerRenewalFailed(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	var buf syncBuffer
	name := uniqueName(t)
	m := newMutex(t, c, name, mutex.WithLogger(newLogger(&buf)), mutex.WithTTL(time.Second), mutex.WithRenewInterval(50*time.Millisecond))
	l, err := m.TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Del(ctx, "redlease:{"+name+"}").Err(); err != nil {
		t.Fatal(err)
	}
	waitEnded(t, l)
	l.Release(ctx)
	// The renewal logs its failure after the loss it caused.
	deadline := time.Now().Add(5 * time.Second)
	for len(buf.records(t)) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	var renew, lost int
	for _, r := range buf.records(t) {
		switch r["msg"] {
		case "redlease: lease renewal failed":
			renew++
			if r["level"] != "WARN" || r["name"] != name || !strings.Contains(r["err"].(string), lease.ErrNotHeld.Error()) {
				t.Errorf("renewal record %v: want WARN, name %s, err not held", r, name)
			}
		case "redlease: lease lost":
			lost++
			if r["level"] != "WARN" || r["name"] != name || r["reason"] != "not_held" {
				t.Errorf("loss record %v: want WARN, name %s, reason not_held", r, name)
			}
		default:
			t.Errorf("unexpected record %v", r)
		}
	}
	if renew != 1 || lost != 1 {
		t.Errorf("%d renewal failures and %d losses logged, want 1 and 1", renew, lost)
	}
}

// TestLoggerQuiet: acquiring, renewing and releasing log nothing, and
// without WithLogger nothing is logged at all (the default slog logger
// stays untouched).
func TestLoggerQuiet(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	var buf syncBuffer
	def := slog.Default()
	slog.SetDefault(newLogger(&buf))
	defer slog.SetDefault(def)
	var own syncBuffer
	for _, opts := range [][]mutex.Option{nil, {mutex.WithLogger(newLogger(&own))}} {
		m := newMutex(t, c, uniqueName(t), append(opts, mutex.WithAutoRenew(false), mutex.WithTTL(100*time.Millisecond))...)
		l, err := m.Lock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	m := newMutex(t, c, uniqueName(t), mutex.WithAutoRenew(false), mutex.WithTTL(50*time.Millisecond))
	l, err := m.TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitEnded(t, l) // lost, but no logger given
	if r := buf.records(t); len(r) != 0 {
		t.Errorf("records on the default logger: %v", r)
	}
	if r := own.records(t); len(r) != 0 {
		t.Errorf("records for a lease acquired and released: %v", r)
	}
}

// TestLoggerRevoked: a lease revoked by an operator logs one Info "lease
// revoked" with its name and token, and no Warn.
func TestLoggerRevoked(t *testing.T) {
	_, c := startRedis(t)
	ctx := context.Background()
	var buf syncBuffer
	name := uniqueName(t)
	m := newMutex(t, c, name, mutex.WithLogger(newLogger(&buf)), mutex.WithTTL(30*time.Second))
	l, err := m.TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Revoke(ctx, l.Token()); err != nil {
		t.Fatal(err)
	}
	waitEnded(t, l)
	l.Release(ctx)
	recs := buf.records(t)
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1: %v", len(recs), recs)
	}
	r := recs[0]
	if r["level"] != "INFO" || r["msg"] != "redlease: lease revoked" || r["name"] != name || r["kind"] != "mutex" || r["token"] != l.Token() {
		t.Errorf("record %v: want INFO lease revoked, name %s, kind mutex, token %s", r, name, l.Token())
	}
}
