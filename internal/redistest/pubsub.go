package redistest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Connections returns how many client connections the server of admin has,
// and how many of them are subscribed to a channel (classic or sharded).
func Connections(t testing.TB, admin *redis.Client) (all, subscribed int) {
	t.Helper()
	list, err := admin.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
		all++
		for _, f := range strings.Fields(line) {
			if (strings.HasPrefix(f, "sub=") || strings.HasPrefix(f, "ssub=")) && f[strings.IndexByte(f, '=')+1:] != "0" {
				subscribed++
				break
			}
		}
	}
	return all, subscribed
}

// WaitSubscribed waits until every channel has a subscriber, classic
// (PUBSUB NUMSUB) or sharded (PUBSUB SHARDNUMSUB), on the server of admin;
// after 30 s it fails the test.
func WaitSubscribed(t testing.TB, admin *redis.Client, channels ...string) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for _, ch := range channels {
		for {
			n, err := admin.PubSubNumSub(ctx, ch).Result()
			if err != nil {
				t.Fatal(err)
			}
			sn, err := admin.PubSubShardNumSub(ctx, ch).Result()
			if err != nil {
				t.Fatal(err)
			}
			if n[ch]+sn[ch] > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("nobody subscribed to %s within 30 s", ch)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}
