// Command expiry: a task that selects on the lease's Lost channel and stops
// the moment the lease is lost (key deleted: ErrNotHeld; TTL ran out:
// ErrExpired), where redis-py polls owned() before each step. See package
// expiryex for the code.
package main

import (
	"context"
	"fmt"
	"io"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/examples/expiry/expiryex"
	"github.com/redlease/redlease/examples/internal/exredis"
)

func main() {
	exredis.Main("expiry", func(ctx context.Context, c *redis.Client, out io.Writer) error {
		cfg := expiryex.Default()
		res, err := expiryex.Run(ctx, c, out, cfg)
		if err != nil {
			return err
		}
		fmt.Fprintln(out, res.Deleted.Verdict())
		fmt.Fprintln(out, res.Expired.Verdict())
		return res.Check()
	})
}
