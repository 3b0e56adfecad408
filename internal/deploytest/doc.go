// Package deploytest runs redlease against the deployments people scale
// Redis out with, started for real on loopback ports by internal/redistest:
// a Redis Cluster of three masters with one replica each, and one master with
// two replicas watched by three Sentinels.
//
// The cluster tests spread lock names over every master's slots and check
// mutex operations, sharded pub/sub wake-ups across clients (SSUBSCRIBE and
// SPUBLISH on the key's own master, found in INFO commandstats), multilock
// exclusivity over names in different slots, freedom from deadlock and
// all-or-nothing failure, and a slot migrated (MIGRATING/IMPORTING, MIGRATE,
// SETSLOT NODE) under a held, auto-renewed lease, whose renewals must follow
// the ASK and MOVED redirections. Two more slot moves are regression tests:
// a mutex.WithReplicas acquisition through a client with a stale slot map
// must follow ASK and MOVED, and a waiter's sharded subscription, dropped by
// the old owner, must be re-established on the new one so that a release
// there wakes it at once.
//
// The failover trials open the hole of asynchronous replication on purpose:
// the master's replicas are frozen (SIGSTOP), locks are acquired, the master
// is killed and the replicas thawed before they are considered down, so the
// promoted replica lacks the writes made meanwhile. Each trial checks, on the
// new master, which acknowledged locks survived, once without and once with
// mutex.WithReplicas, and logs a line starting with "RESULT". With replica
// acknowledgement no acknowledged lock may be lost; every holder whose key
// did not survive must see Lost fire, and waiters must acquire on the new
// master.
//
// Through Sentinel failover clients, the semaphore and the read-write lock
// are checked too (TestSentinelHashLocks): their basic operations and
// wake-ups across clients, and a failover under held, replicated leases
// that must renew on the new master while waiters stay out until the
// holders release there.
//
// The tests need redis-server and redis-cli on PATH; without them they are
// skipped, unless REDLEASE_REQUIRE_REDIS=1. BenchmarkReplicaAckCluster
// measures what waiting for a replica's acknowledgement costs per
// acquisition.
package deploytest
