// Command refresh: redis-py's reacquire(), i.e. resetting the TTL of a held
// lease with Refresh; after a release the lock is taken again with a new
// Lock. See package refreshex for the code.
package main

import (
	"context"
	"io"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/examples/internal/exredis"
	"github.com/redlease/redlease/examples/refresh/refreshex"
)

func main() {
	exredis.Main("refresh", func(ctx context.Context, c *redis.Client, out io.Writer) error {
		cfg := refreshex.Default()
		res, err := refreshex.Run(ctx, c, out, cfg)
		if err != nil {
			return err
		}
		return res.Check()
	})
}
