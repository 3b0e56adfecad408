// Command workers: an errgroup of workers sharing lease.Context(ctx); every
// worker stops when the lease is lost, and the group returns the lease's
// error (ErrNotHeld, ErrExpired). See package workersex for the code.
package main

import (
	"context"
	"fmt"
	"io"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/examples/internal/exredis"
	"github.com/redlease/redlease/examples/workers/workersex"
)

func main() {
	exredis.Main("workers", func(ctx context.Context, c *redis.Client, out io.Writer) error {
		cfg := workersex.Default()
		res, err := workersex.Run(ctx, c, out, cfg)
		if err != nil {
			return err
		}
		for _, c := range []workersex.Case{res.Completed, res.Deleted, res.Expired} {
			fmt.Fprintln(out, c.Verdict())
		}
		return res.Check()
	})
}
