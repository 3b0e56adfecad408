package mutex_test

import (
	"errors"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/mutex"
)

// FuzzNew: any name and option values either build a Mutex or fail with
// ErrInvalid; never a panic, and nothing is sent to Redis.
func FuzzNew(f *testing.F) {
	f.Add("orders:42", int64(10*time.Second), int64(0), 0.01, "", "redlease:")
	f.Add("}", int64(1), int64(-1), 0.5, "tok", "{}")
	f.Add("{a}", int64(time.Millisecond*10), int64(time.Millisecond*5), -0.001, "t", "p{")
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		f.Fatal(err)
	}
	defer mr.Close()
	c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer c.Close()
	f.Fuzz(func(t *testing.T, name string, ttl, renew int64, drift float64, token, prefix string) {
		opts := []mutex.Option{mutex.WithTTL(time.Duration(ttl)), mutex.WithDriftFactor(drift), mutex.WithKeyPrefix(prefix)}
		if renew != 0 {
			opts = append(opts, mutex.WithRenewInterval(time.Duration(renew)))
		}
		if token != "" {
			opts = append(opts, mutex.WithToken(token))
		}
		m, err := mutex.New(c, name, opts...)
		if err != nil {
			if !errors.Is(err, mutex.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if m.Name() != name {
			t.Fatalf("Name() = %q, want %q", m.Name(), name)
		}
		if time.Duration(ttl) < mutex.MinTTL || drift < 0 || drift >= 0.5 {
			t.Fatalf("accepted ttl=%v drift=%v", time.Duration(ttl), drift)
		}
	})
}
