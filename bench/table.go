package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// agg says how the repetitions of one cell become one number.
type agg int

const (
	aggMedian agg = iota
	aggSum
	aggMax
)

// row is one line of the result table: a metric of a scenario.
type row struct {
	key    string
	title  string
	format func(float64) string
	ratio  bool // show the ratio to the floor
	agg    agg
	target func(get func(id string) (float64, bool)) string
}

// results collects every repetition of every cell.
type results struct {
	rows  []*row
	byKey map[string]*row
	vals  map[string]map[string][]float64
	notes map[string]map[string]string // replaces a cell's number
}

func newResults() *results {
	return &results{byKey: map[string]*row{}, vals: map[string]map[string][]float64{}, notes: map[string]map[string]string{}}
}

// define registers a row (in table order) the first time it is seen.
func (r *results) define(rw row) *row {
	if old, ok := r.byKey[rw.key]; ok {
		return old
	}
	p := &rw
	r.rows = append(r.rows, p)
	r.byKey[rw.key] = p
	r.vals[rw.key] = map[string][]float64{}
	r.notes[rw.key] = map[string]string{}
	return p
}

func (r *results) add(key, id string, v float64) {
	r.vals[key][id] = append(r.vals[key][id], v)
}

func (r *results) note(key, id, text string) { r.notes[key][id] = text }

// value aggregates the repetitions of a cell.
func (r *results) value(key, id string) (float64, bool) {
	vs := r.vals[key][id]
	if len(vs) == 0 {
		return 0, false
	}
	switch r.byKey[key].agg {
	case aggSum:
		var s float64
		for _, v := range vs {
			s += v
		}
		return s, true
	case aggMax:
		return slices.Max(vs), true
	}
	return median(vs), true
}

// write prints the table in markdown, one column per contender.
func (r *results) write(w io.Writer, ids []string) {
	fmt.Fprintf(w, "| scenario · metric | %s | target (redlease) |\n", strings.Join(ids, " | "))
	fmt.Fprintf(w, "|---|%s---|\n", strings.Repeat("--:|", len(ids)))
	for _, rw := range r.rows {
		cells := make([]string, len(ids))
		for i, id := range ids {
			cells[i] = r.cell(rw, id)
		}
		t := ""
		if rw.target != nil {
			t = rw.target(func(id string) (float64, bool) { return r.value(rw.key, id) })
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", rw.title, strings.Join(cells, " | "), t)
	}
}

func (r *results) cell(rw *row, id string) string {
	if n, ok := r.notes[rw.key][id]; ok {
		return n
	}
	v, ok := r.value(rw.key, id)
	if !ok {
		return "—"
	}
	s := rw.format(v)
	if rw.ratio && id != "floor" {
		if f, ok := r.value(rw.key, "floor"); ok && f != 0 {
			s += fmt.Sprintf(" (%.2f×)", v/f)
		}
	}
	return s
}

// ---- number formats

func fmtInt(v float64) string {
	neg := v < 0
	s := strconv.FormatInt(int64(math.Round(math.Abs(v))), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func fmtRate(v float64) string { return fmtInt(v) + "/s" }

// fmtDur formats nanoseconds.
func fmtDur(v float64) string {
	d := time.Duration(v)
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.0f µs", float64(d)/1e3)
	}
}

func fmtF1(v float64) string { return fmt.Sprintf("%.1f", v) }
func fmtF2(v float64) string { return fmt.Sprintf("%.2f", v) }
func fmtKiB(v float64) string {
	return fmt.Sprintf("%.1f KiB", v/1024)
}

// ---- targets: measured against, never asserted

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// ratioTarget: redlease ≥ want × floor (higher is better) or ≤ (lower).
func ratioTarget(want float64, higherBetter bool) func(func(string) (float64, bool)) string {
	return func(get func(string) (float64, bool)) string {
		v, ok1 := get("redlease")
		f, ok2 := get("floor")
		if !ok1 || !ok2 || f == 0 {
			return "—"
		}
		x := v / f
		if higherBetter {
			return fmt.Sprintf("≥%.2f× floor: %.2f× %s", want, x, verdict(x >= want))
		}
		return fmt.Sprintf("≤%.2f× floor: %.2f× %s", want, x, verdict(x <= want))
	}
}

// absTarget: redlease compared with a fixed bound.
func absTarget(label string, bound float64, higherBetter bool, format func(float64) string) func(func(string) (float64, bool)) string {
	return func(get func(string) (float64, bool)) string {
		v, ok := get("redlease")
		if !ok {
			return "—"
		}
		if higherBetter {
			return fmt.Sprintf("%s: %s %s", label, format(v), verdict(v >= bound))
		}
		return fmt.Sprintf("%s: %s %s", label, format(v), verdict(v <= bound))
	}
}
