// Package faults holds redlease's fault-injection scenarios: blackholed and
// slow connections, Redis killed, restarted and frozen, a holder process
// paused past its TTL, churn, and connection loss during multilock
// acquisition. Each scenario records the intervals in which clients believed
// they held a lock and checks that none overlap, and that fenced writes were
// applied in fence order.
//
// The tests carry the build tag "faults" and run with `make test-faults`.
// Each logs a line starting with "RESULT" that RELIABILITY.md quotes.
package faults
