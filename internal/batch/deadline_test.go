package batch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/internal/faultproxy"
	"github.com/redlease/redlease/internal/redistest"
)

// TestBatchSenderStopsAtLatestDeadline: with ContextTimeoutEnabled and no
// ReadTimeout, a stalled server bounds a call only by its ctx. A caller that
// sends a batch for others must not wait past the latest deadline of the
// batch's calls (before, it sent under a context without any deadline and
// waited forever).
func TestBatchSenderStopsAtLatestDeadline(t *testing.T) {
	s := redistest.Start(t)
	p, err := faultproxy.New(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := redis.NewClient(&redis.Options{Addr: p.Addr(), ContextTimeoutEnabled: true, ReadTimeout: -1, MaxRetries: -1, PoolSize: 8})
	defer c.Close()
	ctx := context.Background()
	if _, err := Run(ctx, c, setScript, setArgs("warm", "x")); err != nil { // loads the script
		t.Fatal(err)
	}
	p.Blackhole(faultproxy.Downstream)

	// The first call goes out alone and stalls; the next two queue behind
	// it and go out together, one of them sending the batch.
	errs := make(chan error, 3)
	var wg sync.WaitGroup
	call := func(i int, d time.Duration) {
		defer wg.Done()
		cctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		_, err := Run(cctx, c, setScript, setArgs(fmt.Sprint("k", i), "v"))
		errs <- err
	}
	wg.Add(1)
	go call(0, 200*time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	wg.Add(2)
	go call(1, 400*time.Millisecond)
	go call(2, 400*time.Millisecond)

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(hangGuard):
		_ = c.Close() // fails the stuck read, so the test ends
		<-done
		t.Fatalf("a call was still waiting %v after every deadline had passed", hangGuard)
	}
	close(errs)
	for err := range errs {
		if err == nil || (!errors.Is(err, context.DeadlineExceeded) && !isTimeout(err)) {
			t.Errorf("call under a stalled server: %v, want its deadline's error", err)
		}
	}
	p.Restore()
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}
