package main

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
	"time"
)

// throughputRows are the groups of the throughput panel, more is better.
var throughputRows = []struct{ key, label string }{
	{"1rate", "1. uncontended, 1 goroutine: TryLock+Release pairs/s"},
	{"2rate", "2. uncontended, 32 goroutines, distinct keys: pairs/s"},
	{"3:0s:rate", "3. 8 goroutines, one key, hold 0: acquisitions/s"},
	{"3:1ms:rate", "3. 8 goroutines, one key, hold 1 ms: acquisitions/s"},
}

// waitPanels are the wait-distribution panels, from scenario 3.
var waitPanels = []struct{ key, label string }{
	{"3:1ms:", "3. wait for Lock, 8 goroutines on one key, hold 1 ms"},
	{"3:0s:", "3. wait for Lock, 8 goroutines on one key, hold 0"},
}

var contenderColors = []string{"#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"}

// writeContendedSVG draws two panels: throughput per contender (one group of
// horizontal bars per row of throughputRows that has values, each group on
// its own linear scale, labelled with the value and its ratio to the floor),
// and for scenario 3 the distribution of the waits of all repetitions per
// contender on a log time axis: box p25–p75, bar at p50, whisker p10–p99,
// tick at p90, cross at the max (waits unfinished at the end included).
// The layout depends only on the values, so equal input gives equal output.
func writeContendedSVG(w io.Writer, r *results, waits map[string]map[string][]time.Duration, ids []string, title string) error {
	const (
		width  = 1000.0
		left   = 150.0 // bar / axis start
		plotW  = 480.0
		barH   = 16.0
		gap    = 14.0
		header = 18.0
	)
	color := func(i int) string { return contenderColors[i%len(contenderColors)] }
	var b strings.Builder
	y := 40.0
	text := func(x, y float64, anchor, attrs, s string) {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="%s"%s>%s</text>`+"\n", x, y, anchor, attrs, html.EscapeString(s))
	}

	// Panel 1: throughput.
	text(10, y, "start", ` font-size="13" font-weight="bold"`, "Throughput (more is better; each group on its own linear scale)")
	y += 10
	for _, tr := range throughputRows {
		if _, ok := r.byKey[tr.key]; !ok {
			continue
		}
		maxV := 0.0
		for _, id := range ids {
			if v, ok := r.value(tr.key, id); ok {
				maxV = max(maxV, v)
			}
		}
		if maxV == 0 {
			continue
		}
		base, hasBase := r.value(tr.key, "floor")
		y += header
		text(10, y-4, "start", ` font-weight="bold"`, tr.label)
		for i, id := range ids {
			v, ok := r.value(tr.key, id)
			text(left-6, y+barH-4, "end", "", id)
			if !ok {
				text(left+4, y+barH-4, "start", ` fill="#777"`, "no value")
				y += barH
				continue
			}
			bw := v / maxV * plotW
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", left, y+1, bw, barH-2, color(i))
			label := fmtRate(v)
			if hasBase && base > 0 && id != "floor" {
				label += fmt.Sprintf("  (%.2f× floor)", v/base)
			}
			text(left+bw+4, y+barH-4, "start", "", label)
			y += barH
		}
		y += gap
	}

	// Panel 2: wait distributions on a log axis shared by all wait panels.
	type dist struct {
		p10, p25, p50, p75, p90, p99, mx time.Duration
		n                                int
		ok                               bool
	}
	lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
	dists := map[string][]dist{}
	for _, wp := range waitPanels {
		ds := make([]dist, len(ids))
		found := false
		for i, id := range ids {
			ws := waits[wp.key][id]
			if len(ws) == 0 {
				continue
			}
			d := dist{
				p10: percentile(ws, 0.10), p25: percentile(ws, 0.25), p50: percentile(ws, 0.50),
				p75: percentile(ws, 0.75), p90: percentile(ws, 0.90), p99: percentile(ws, 0.99),
				mx: percentile(ws, 1), n: len(ws), ok: true,
			}
			if v, ok := r.value(wp.key+"wmax", id); ok {
				d.mx = max(d.mx, time.Duration(v))
			}
			ds[i] = d
			lo, hi = min(lo, d.p10), max(hi, d.mx)
			found = true
		}
		if found {
			dists[wp.key] = ds
		}
	}
	if len(dists) > 0 {
		lo = max(lo, time.Microsecond)
		hi = max(hi, lo*10)
		d0 := math.Floor(math.Log10(float64(lo)))
		d1 := math.Ceil(math.Log10(float64(hi)))
		xOf := func(d time.Duration) float64 {
			v := math.Log10(float64(max(d, time.Duration(math.Pow(10, d0)))))
			return left + (v-d0)/(d1-d0)*plotW
		}
		y += 16
		text(10, y, "start", ` font-size="13" font-weight="bold"`, "Wait for the lock under contention (less is better; log time axis)")
		y += 16
		// Key to the glyph.
		kx, ky := left, y+2
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`+"\n", kx, ky+6, kx+60, ky+6)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="24" height="12" fill="#bbb" stroke="#333"/>`+"\n", kx+15, ky)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black" stroke-width="3"/>`+"\n", kx+26, ky, kx+26, ky+12)
		text(kx+70, ky+10, "start", ` font-size="11"`, "whisker p10–p99, box p25–p75, thick bar p50, thin tick p90, × max (unfinished waits included);")
		text(kx+70, ky+24, "start", ` font-size="11"`, "the waits of all repetitions pooled; n = completed waits")
		y += 34
		for _, wp := range waitPanels {
			ds, ok := dists[wp.key]
			if !ok {
				continue
			}
			y += header
			text(10, y-4, "start", ` font-weight="bold"`, wp.label)
			top := y
			for i, id := range ids {
				d := ds[i]
				text(left-6, y+barH-4, "end", "", id)
				if !d.ok {
					text(left+4, y+barH-4, "start", ` fill="#777"`, "no value")
					y += barH + 4
					continue
				}
				c := color(i)
				mid := y + barH/2
				fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", xOf(d.p10), mid, xOf(d.p99), mid, c)
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" fill-opacity="0.35" stroke="%s"/>`+"\n",
					xOf(d.p25), y+2, max(xOf(d.p75)-xOf(d.p25), 1), barH-4, c, c)
				fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="3"/>`+"\n", xOf(d.p50), y+1, xOf(d.p50), y+barH-1, c)
				fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", xOf(d.p90), y+3, xOf(d.p90), y+barH-3, c)
				mx := xOf(d.mx)
				fmt.Fprintf(&b, `<path d="M%.1f %.1fl6 6m0 -6l-6 6" stroke="%s" stroke-width="1.5"/>`+"\n", mx-3, mid-3, c)
				text(left+plotW+8, y+barH-4, "start", ` font-size="11"`,
					fmt.Sprintf("p50 %s · p99 %s · max %s (n=%d)", fmtDur(float64(d.p50)), fmtDur(float64(d.p99)), fmtDur(float64(d.mx)), d.n))
				y += barH + 4
			}
			// Decade grid and labels.
			for dec := d0; dec <= d1; dec++ {
				x := left + (dec-d0)/(d1-d0)*plotW
				fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ccc" stroke-dasharray="2 3"/>`+"\n", x, top, x, y)
				text(x, y+12, "middle", ` font-size="11" fill="#555"`, fmtDecade(dec))
			}
			y += 16 + gap
		}
	}
	y += 10

	var out strings.Builder
	fmt.Fprintf(&out, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", width, y)
	out.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	fmt.Fprintf(&out, `<text x="10" y="20" font-size="14" font-weight="bold">%s</text>`+"\n", html.EscapeString(title))
	out.WriteString(b.String())
	out.WriteString("</svg>\n")
	_, err := io.WriteString(w, out.String())
	return err
}

// fmtDecade names the duration 10^dec ns: "1 µs", "10 ms", "1 s".
func fmtDecade(dec float64) string {
	units := []string{"ns", "µs", "ms", "s"}
	e := int(dec)
	u := min(max(e/3, 0), len(units)-1)
	return fmt.Sprintf("%.0f %s", math.Pow(10, float64(e-3*u)), units[u])
}
