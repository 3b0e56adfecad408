package wake

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redlease/redlease/internal/faultproxy"
	"github.com/redlease/redlease/internal/leaktest"
	"github.com/redlease/redlease/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }

// hangGuard bounds every wait of these tests; reaching it means a hang, not
// slowness.
const hangGuard = 30 * time.Second

// slowProbe delays the reply of every SPUBLISH sent through its client: the
// probe a subscription sends first when it opens. Like a slow network read
// (go-redis ignores ctx deadlines on sockets by default), it ignores ctx.
type slowProbe struct {
	delay   time.Duration
	once    sync.Once
	started chan struct{} // closed when the first probe is sent
}

func (p *slowProbe) DialHook(next redis.DialHook) redis.DialHook { return next }

func (p *slowProbe) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !strings.EqualFold(cmd.Name(), "spublish") {
			return next(ctx, cmd)
		}
		p.once.Do(func() { close(p.started) })
		err := next(ctx, cmd)
		time.Sleep(p.delay)
		return err
	}
}

func (p *slowProbe) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// churn runs waiters on channels of one shard that join with a short ctx and
// leave at once, each then pausing past Linger so the idle channel is
// dropped while the others come and go.
func churn(c redis.UniversalClient, channels []string, workers, rounds int) {
	var wg sync.WaitGroup
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
				w := Join(ctx, c, channels[(g+r)%len(channels)], 0)
				cancel()
				w.Leave(false)
				time.Sleep(Linger + time.Duration(g*37%100)*time.Millisecond)
			}
		}()
	}
	wg.Wait()
}

// waitClosed waits until c's hub has dropped every channel and closed its
// subscriptions.
func waitClosed(t *testing.T, c redis.UniversalClient) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for lookup(c) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("hub of %v still open after its waiters left", c)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkWakes joins channel, waits for the subscription's confirmation and
// checks that a message published by pub wakes the waiter.
func checkWakes(t *testing.T, c, pub redis.UniversalClient, channel string) {
	t.Helper()
	w := Join(context.Background(), c, channel, 0)
	defer w.Leave(false)
	select {
	case <-w.q.ready:
	case <-time.After(hangGuard):
		t.Fatalf("subscription to %s not confirmed", channel)
	}
	if err := pub.SPublish(context.Background(), channel, "token").Err(); err != nil {
		t.Fatalf("spublish: %v", err)
	}
	select {
	case <-w.Woken():
	case <-time.After(hangGuard):
		t.Fatalf("waiter on %s not woken by a publish", channel)
	}
}

func channels(t *testing.T, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s:%d", t.Name(), i)
	}
	return out
}

// TestSlowOpenWhileWaitersComeAndGo: the first reply on a subscription's
// connection takes 1.5 s while waiters on other channels of its shard join
// and leave, so their lingering channels are dropped while the subscription
// is still opening; later all waiters leave while reopened subscriptions are
// opening. The hub must neither crash nor race, must close everything it
// opened, and must still deliver wake-ups afterwards.
func TestSlowOpenWhileWaitersComeAndGo(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	probe := &slowProbe{delay: 1500 * time.Millisecond, started: make(chan struct{})}
	c.AddHook(probe)
	chs := channels(t, 4)

	opened := make(chan struct{})
	leave := make(chan struct{})
	go func() {
		defer close(opened)
		w := Join(context.Background(), c, chs[0], 0)
		<-leave
		w.Leave(false)
	}()
	select {
	case <-probe.started:
	case <-time.After(hangGuard):
		t.Fatal("subscription never probed the server")
	}
	churn(c, chs[1:], 4, 5) // drops channels while the first probe waits
	close(leave)
	<-opened
	churn(c, chs, 4, 5) // every channel idle at times: subscriptions close while opening
	waitClosed(t, c)

	checkWakes(t, c, srv.Client(t), chs[0])
	waitClosed(t, c)
}

// TestLatencySpikeWhileWaitersComeAndGo: every reply from the server takes
// 1.1 s (a latency spike on the network) while waiters come and go; once it
// is over, wake-ups work again.
func TestLatencySpikeWhileWaitersComeAndGo(t *testing.T) {
	srv := redistest.Start(t)
	p, err := faultproxy.New(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	c := redistest.NewClient(t, p.Addr())
	chs := channels(t, 3)

	p.SetLatency(faultproxy.Downstream, 1100*time.Millisecond)
	churn(c, chs, 4, 6)
	waitClosed(t, c)

	p.SetLatency(faultproxy.Downstream, 0)
	checkWakes(t, c, srv.Client(t), chs[0])
	waitClosed(t, c)
}
