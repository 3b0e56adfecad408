// Command waittimeout: five workers wait up to 5s each (a context deadline,
// redis-py's blocking_timeout) to increment a shared counter under the lock;
// the final value is printed and checked. See package waittimeoutex.
package main

import (
	"context"
	"io"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/examples/internal/exredis"
	"github.com/redlease/redlease/examples/waittimeout/waittimeoutex"
)

func main() {
	exredis.Main("waittimeout", func(ctx context.Context, c *redis.Client, out io.Writer) error {
		cfg := waittimeoutex.Default()
		res, err := waittimeoutex.Run(ctx, c, out, cfg)
		if err != nil {
			return err
		}
		return res.Check()
	})
}
