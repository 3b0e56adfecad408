// Command status: a monitor goroutine prints Locked (is the name held?) and
// Owned (is the holder's lease still its own?) while another goroutine
// holds the lock (redis-py: locked(), owned()). See package statusex.
package main

import (
	"context"
	"io"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/examples/internal/exredis"
	"github.com/redlease/redlease/examples/status/statusex"
)

func main() {
	exredis.Main("status", func(ctx context.Context, c *redis.Client, out io.Writer) error {
		cfg := statusex.Default()
		res, err := statusex.Run(ctx, c, out, cfg)
		if err != nil {
			return err
		}
		return res.Check()
	})
}
