package mutex_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/core"
	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/lease"
	"github.com/redlease/redlease/mutex"
)

// startReplicated starts a master and n replicas linked to it.
func startReplicated(t testing.TB, n int) (*redistest.Server, []*redistest.Server) {
	t.Helper()
	master := redistest.Start(t)
	var replicas []*redistest.Server
	for i := 0; i < n; i++ {
		replicas = append(replicas, redistest.Start(t, "--replicaof", "127.0.0.1", fmt.Sprint(master.Port), "--repl-diskless-sync-delay", "0"))
	}
	mc := redistest.NewClient(t, master.Addr)
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, _ := mc.Info(context.Background(), "replication").Result()
		if strings.Count(info, "state=online") == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas not online:\n%s", info)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return master, replicas
}

func TestWithReplicasBadInput(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	for _, opts := range [][]mutex.Option{
		{mutex.WithReplicas(-1, time.Second)},
		{mutex.WithReplicas(1, 0)},
		{mutex.WithTTL(time.Second), mutex.WithReplicas(1, time.Second)},
	} {
		if _, err := mutex.New(c, "x", opts...); !errors.Is(err, mutex.ErrInvalid) || !strings.Contains(err.Error(), "replica") {
			t.Errorf("got %v, want ErrInvalid naming the replica setting", err)
		}
	}
}

func TestWithReplicas(t *testing.T) {
	master, replicas := startReplicated(t, 1)
	c := master.Client(t)
	rc := replicas[0].Client(t)
	ctx := context.Background()
	name := uniqueName(t)
	key := "redlease:{" + name + "}"

	// Generous: WAIT returns as soon as the replica acknowledges; a loaded
	// machine can be slow to.
	m := newMutex(t, c, name, mutex.WithReplicas(1, 2*time.Second))
	l, err := m.TryLock(ctx)
	if err != nil {
		t.Fatalf("TryLock with 1 replica: %v", err)
	}
	// Acknowledged means already on the replica.
	if v, _ := rc.Get(ctx, key).Result(); !core.Holds(v, l.Token()) {
		t.Fatalf("replica holds %q right after the acquisition, want the token", v)
	}
	l.Release(ctx)

	// Asking for more replicas than exist: undone, distinct error.
	m2 := newMutex(t, c, name, mutex.WithReplicas(2, 50*time.Millisecond))
	if _, err := m2.TryLock(ctx); !errors.Is(err, mutex.ErrNotReplicated) || errors.Is(err, mutex.ErrLocked) {
		t.Fatalf("TryLock wanting 2 replicas of 1: %v, want ErrNotReplicated", err)
	}
	if n, _ := c.Exists(ctx, key).Result(); n != 0 {
		t.Fatal("an unacknowledged acquisition stayed held")
	}

	// A stalled replica: the acquisition is not acknowledged and undone.
	pid := replicas[0].Pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	_, err = newMutex(t, c, name, mutex.WithReplicas(1, 500*time.Millisecond)).TryLock(ctx)
	syscall.Kill(pid, syscall.SIGCONT)
	if !errors.Is(err, mutex.ErrNotReplicated) {
		t.Fatalf("TryLock with the replica stopped: %v", err)
	}
	if n, _ := c.Exists(ctx, key).Result(); n != 0 {
		t.Fatal("an unacknowledged acquisition stayed held")
	}

	// NOSCRIPT inside the pipeline is handled.
	c.ScriptFlush(ctx)
	l, err = m.TryLock(ctx)
	if err != nil {
		t.Fatalf("TryLock after SCRIPT FLUSH: %v", err)
	}
	l.Release(ctx)
}

// TestWithReplicasRenewalNeedsAck: with WithReplicas, a renewal that too few
// replicas acknowledged does not extend the lease's deadline: after a
// failover the promoted replica could hold the older expiry. The master keeps
// renewing the key, but the lease ends with ErrExpired at its deadline.
func TestWithReplicasRenewalNeedsAck(t *testing.T) {
	master, replicas := startReplicated(t, 1)
	c := master.Client(t)
	ctx := context.Background()
	name := uniqueName(t)
	m := newMutex(t, c, name, mutex.WithTTL(3*time.Second), mutex.WithReplicas(1, 400*time.Millisecond))
	// A loaded machine can miss the 400 ms acknowledgement of the first
	// acquisition (an unacknowledged one is undone): try a few times.
	var l *lease.Lease
	var err error
	for try := 0; try < 10; try++ {
		if l, err = m.TryLock(ctx); !errors.Is(err, mutex.ErrNotReplicated) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(ctx)
	pid := replicas[0].Pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(pid, syscall.SIGCONT)
	if err := l.Extend(ctx, time.Second); !errors.Is(err, mutex.ErrNotReplicated) {
		t.Fatalf("Extend with the replica stopped: %v, want ErrNotReplicated", err)
	}
	select {
	case <-l.Lost():
	case <-time.After(10 * time.Second):
		t.Fatalf("lease still held 10s after its replica stopped (ValidUntil %v)", l.ValidUntil())
	}
	if !errors.Is(l.Err(), lease.ErrExpired) {
		t.Fatalf("Err() = %v, want ErrExpired", l.Err())
	}
}

// BenchmarkReplicaAck compares TryLock+Release with and without waiting for
// one replica's acknowledgement.
func BenchmarkReplicaAck(b *testing.B) {
	master, _ := startReplicated(b, 1)
	c := master.Client(b)
	ctx := context.Background()
	for _, n := range []int{0, 1} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			opts := []mutex.Option{mutex.WithAutoRenew(false)}
			if n > 0 {
				opts = append(opts, mutex.WithReplicas(n, time.Second))
			}
			m, _ := mutex.New(c, fmt.Sprintf("ack-%d", n), opts...)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				l, err := m.TryLock(ctx)
				if err != nil {
					b.Fatal(err)
				}
				l.Release(ctx)
			}
		})
	}
}
