// Command trylock: three goroutines each try the lock once; one works, the
// others report that the lock is busy (redis-py: acquire(blocking=False)).
// See package trylockex for the code.
package main

import (
	"context"
	"io"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/examples/internal/exredis"
	"github.com/redlease/redlease/examples/trylock/trylockex"
)

func main() {
	exredis.Main("trylock", func(ctx context.Context, c *redis.Client, out io.Writer) error {
		cfg := trylockex.Default()
		res, err := trylockex.Run(ctx, c, out, cfg)
		if err != nil {
			return err
		}
		return res.Check()
	})
}
