//go:build faults

package faults

import (
	"sync"
	"time"

	"github.com/redlease/redlease/internal/history"
)

// stallMonitor records the moments this process was not running: a
// goroutine that sleeps 1ms in a loop notes every gap longer than threshold.
// While the process is stalled (CPU starvation, GC, a noisy neighbour) no
// timer fires and Lost cannot close: that is the "paused process" case of the
// safety model, which fences cover. The scenarios attribute an overlap to a
// stall only if a recorded stall touches the overlap window.
type stallMonitor struct {
	threshold time.Duration
	mu        sync.Mutex
	stalls    [][2]time.Time
	stop      chan struct{}
	done      chan struct{}
}

func startStallMonitor(threshold time.Duration) *stallMonitor {
	m := &stallMonitor{threshold: threshold, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		prev := time.Now()
		for {
			select {
			case <-m.stop:
				return
			default:
			}
			time.Sleep(time.Millisecond)
			now := time.Now()
			if now.Sub(prev) > threshold {
				m.mu.Lock()
				m.stalls = append(m.stalls, [2]time.Time{prev, now})
				m.mu.Unlock()
			}
			prev = now
		}
	}()
	return m
}

func (m *stallMonitor) Stop() {
	close(m.stop)
	<-m.done
}

// Max returns the longest stall seen and how many there were.
func (m *stallMonitor) Max() (time.Duration, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var max time.Duration
	for _, s := range m.stalls {
		if d := s[1].Sub(s[0]); d > max {
			max = d
		}
	}
	return max, len(m.stalls)
}

// explains reports whether a stall touched the window in which the earlier
// holder should have seen Lost close: from shortly before the later holder
// started (the key expired in Redis before that) to when the earlier holder
// finally noticed.
func (m *stallMonitor) explains(v history.Violation) bool {
	a, b := v.A, v.B
	if b.Start.Before(a.Start) {
		a, b = b, a
	}
	from, to := b.Start.Add(-100*time.Millisecond), a.End
	if a.End.IsZero() {
		to = time.Now()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.stalls {
		if s[1].After(from) && s[0].Before(to) {
			return true
		}
	}
	return false
}
