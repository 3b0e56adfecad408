package history

import (
	"fmt"
	"strconv"
	"time"
)

// Kind is the kind of a Violation.
type Kind int

const (
	// Overlap means two critical sections of the same lock overlapped in time.
	Overlap Kind = iota + 1
	// FenceOrder means a write was accepted although its fencing token was not
	// larger than that of an earlier accepted write for the same lock.
	FenceOrder
)

// String returns "overlap", "fence-order" or "Kind(n)".
func (k Kind) String() string {
	switch k {
	case Overlap:
		return "overlap"
	case FenceOrder:
		return "fence-order"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Violation is one breach of mutual exclusion or of fencing-token order.
// Which fields are set depends on Kind.
type Violation struct {
	Kind Kind
	Name string // the lock name

	// Overlap: the two overlapping intervals, A starting no later than B.
	A, B Interval

	// FenceOrder: the offending accepted write, at index WriteIndex in the
	// checked log, and the earlier accepted write with the largest token.
	Write, Prior           Write
	WriteIndex, PriorIndex int
}

// String describes the violation on one line, e.g.
//
//	lock "orders": overlap of 25ms: client "c1" (fence 3) held it [10:00:00.000000000, 10:00:00.050000000] and client "c2" (fence 4) [10:00:00.025000000, open]
func (v Violation) String() string {
	switch v.Kind {
	case Overlap:
		return fmt.Sprintf("lock %q: overlap of %s: client %q (fence %d) held it %s and client %q (fence %d) %s",
			v.Name, overlapLen(v.A, v.B), v.A.Client, v.A.Fence, span(v.A), v.B.Client, v.B.Fence, span(v.B))
	case FenceOrder:
		return fmt.Sprintf("lock %q: write #%d with fence %d accepted after write #%d with fence %d",
			v.Name, v.WriteIndex, v.Write.Fence, v.PriorIndex, v.Prior.Fence)
	}
	return fmt.Sprintf("lock %q: %s", v.Name, v.Kind)
}

const stamp = "15:04:05.000000000"

func span(iv Interval) string {
	end := "open"
	if !iv.End.IsZero() {
		end = iv.End.Format(stamp)
	}
	return "[" + iv.Start.Format(stamp) + ", " + end + "]"
}

// overlapLen returns the length of a ∩ b, or "unbounded" if both are open.
func overlapLen(a, b Interval) string {
	start := a.Start
	if b.Start.After(start) {
		start = b.Start
	}
	var end time.Time
	switch {
	case a.End.IsZero() && b.End.IsZero():
		return "unbounded length"
	case a.End.IsZero():
		end = b.End
	case b.End.IsZero():
		end = a.End
	case a.End.Before(b.End):
		end = a.End
	default:
		end = b.End
	}
	return end.Sub(start).String()
}
