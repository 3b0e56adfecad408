package main

import (
	"context"
	"fmt"
	"testing"

	"github.com/redlease/redlease/multilock"
	"github.com/redlease/redlease/mutex"
)

// TestMultilockServerCost measures what Redis spends on an uncontended
// multilock TryLock+Release of 1 and of 16 names in one hash slot (INFO
// commandstats after CONFIG RESETSTAT; µs sums the scripts' calls, whose
// time includes the calls they make), the least of 5 rounds, and reports the
// 16:1 ratio.
//
//	BENCH_DIAG=1 go test -run TestMultilockServerCost -v
func TestMultilockServerCost(t *testing.T) {
	e := diagEnv(t)
	ctx := context.Background()
	c := e.clients["redlease"]
	const n, rounds = 500, 5
	sizes := []int{1, 16}
	best := map[int][2]stats{}
	for r := range rounds {
		for _, k := range sizes {
			mls := make([]*multilock.MultiLock, n)
			for i := range mls {
				names := make([]string, k)
				for j := range names {
					names[j] = fmt.Sprintf("{mc:%d:%d:%d}:%d", k, r, i, j)
				}
				ml, err := multilock.New(c, names, mutex.WithAutoRenew(false))
				if err != nil {
					t.Fatal(err)
				}
				mls[i] = ml
			}
			if err := e.admin.ConfigResetStat(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			ls := make([]func(context.Context) error, n)
			for i, ml := range mls {
				l, err := ml.TryLock(ctx)
				if err != nil {
					t.Fatal(err)
				}
				ls[i] = l.Release
			}
			acq := serverStats(t, e.admin)
			if err := e.admin.ConfigResetStat(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			for _, rel := range ls {
				if err := rel(ctx); err != nil {
					t.Fatal(err)
				}
			}
			rel := serverStats(t, e.admin)
			b, ok := best[k]
			if !ok || acq.topUsec < b[0].topUsec {
				b[0] = acq
			}
			if !ok || rel.topUsec < b[1].topUsec {
				b[1] = rel
			}
			best[k] = b
		}
	}
	pair := func(k int) float64 { return (best[k][0].topUsec + best[k][1].topUsec) / n }
	for _, k := range sizes {
		acq, rel := best[k][0], best[k][1]
		t.Logf("%2d names: acquire %6.2f µs %5.1f cmds [%s] · release %6.2f µs %5.1f cmds [%s] · pair %6.2f µs",
			k, acq.topUsec/n, float64(acq.calls)/n, acq.detail(n), rel.topUsec/n, float64(rel.calls)/n, rel.detail(n), pair(k))
	}
	t.Logf("16:1 server µs ratio %.2f×; %.2f µs per extra name", pair(16)/pair(1), (pair(16)-pair(1))/15)
}
