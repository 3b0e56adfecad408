// Command extend: a task longer than the lock's TTL, extended halfway by
// hand (WithAutoRenew(false) + Extend, redis-py's lock.extend), then the
// same task with auto-renewal, the Go way. See package extendex.
package main

import (
	"context"
	"io"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/examples/extend/extendex"
	"github.com/redlease/redlease/examples/internal/exredis"
)

func main() {
	exredis.Main("extend", func(ctx context.Context, c *redis.Client, out io.Writer) error {
		cfg := extendex.Default()
		res, err := extendex.Run(ctx, c, out, cfg)
		if err != nil {
			return err
		}
		return res.Check()
	})
}
