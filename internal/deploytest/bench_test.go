package deploytest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redlease/redlease/internal/redistest"
	"github.com/redlease/redlease/mutex"
)

// BenchmarkReplicaAckCluster measures TryLock+Release on Redis Cluster (3
// masters, 1 replica each) without waiting for replicas and with
// WithReplicas(1, time.Second), on the same cluster and client.
func BenchmarkReplicaAckCluster(b *testing.B) {
	c := redistest.StartCluster(b, 3, 1)
	cc := c.Client(b)
	ctx := context.Background()
	for _, n := range []int{0, 1} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			opts := []mutex.Option{mutex.WithAutoRenew(false)}
			if n > 0 {
				opts = append(opts, mutex.WithReplicas(n, time.Second))
			}
			m := newMutex(b, cc, fmt.Sprintf("bench-ack-%d", n), opts...)
			if l, err := m.TryLock(ctx); err != nil { // warm up: slot map, scripts, connections
				b.Fatal(err)
			} else if err := l.Release(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				l, err := m.TryLock(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if err := l.Release(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
