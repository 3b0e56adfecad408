package history

import (
	"cmp"
	"slices"
)

// CheckOverlaps reports every pair of intervals for the same lock name that
// overlap in time, as Overlap violations. Two intervals a and b overlap when
//
//	a.Start < b.End && b.Start < a.End
//
// so intervals that merely touch (a.End == b.Start) do not. A zero End counts
// as +infinity (the section never ended). An End before its Start is treated
// as equal to the Start: a zero-length section, which still overlaps any
// section that strictly contains its instant. Different names never
// conflict; the client does not matter (the same client holding a lock twice
// at once is also reported).
//
// In each violation, A is the interval with the earlier Start (on a tie, the
// one earlier in the input). Violations are ordered by name, then by A's and
// B's position in start order. The input is not modified.
func CheckOverlaps(intervals []Interval) []Violation {
	type item struct {
		iv  Interval
		pos int // position in the input, for stable ordering
	}
	byName := make(map[string][]item)
	for i, iv := range intervals {
		if !iv.End.IsZero() && iv.End.Before(iv.Start) {
			iv.End = iv.Start
		}
		byName[iv.Name] = append(byName[iv.Name], item{iv, i})
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	slices.Sort(names)

	var out []Violation
	for _, n := range names {
		items := byName[n]
		slices.SortFunc(items, func(a, b item) int {
			if c := a.iv.Start.Compare(b.iv.Start); c != 0 {
				return c
			}
			return cmp.Compare(a.pos, b.pos)
		})
		for i, a := range items {
			for _, b := range items[i+1:] {
				// Starts are sorted: once b starts at or after a's end, so
				// does every later interval, and none overlaps a.
				if !startsBeforeEnd(b.iv, a.iv) {
					break
				}
				if startsBeforeEnd(a.iv, b.iv) {
					out = append(out, Violation{Kind: Overlap, Name: n, A: a.iv, B: b.iv})
				}
			}
		}
	}
	return out
}

// startsBeforeEnd reports x.Start < y.End, with a zero y.End as +infinity.
func startsBeforeEnd(x, y Interval) bool {
	return y.End.IsZero() || x.Start.Before(y.End)
}
