// Command transfer: account transfers under a multilock of both accounts;
// balances are conserved and opposite transfers (A→B and B→A at once) do
// not deadlock. See package transferex for the code.
package main

import (
	"context"
	"fmt"
	"io"

	"github.com/redis/go-redis/v9"

	"github.com/redlease/redlease/examples/internal/exredis"
	"github.com/redlease/redlease/examples/transfer/transferex"
)

func main() {
	exredis.Main("transfer", func(ctx context.Context, c *redis.Client, out io.Writer) error {
		cfg := transferex.Default()
		res, err := transferex.Run(ctx, c, out, cfg)
		if err != nil {
			return err
		}
		fmt.Fprintln(out, res.Verdict())
		return res.Check()
	})
}
