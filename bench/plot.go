package main

import (
	"fmt"
	"html"
	"io"
	"strings"
)

// plotRows are the rows the SVG shows, each as ratios to the floor.
var plotRows = []struct{ key, label string }{
	{"1rate", "1 goroutine: pairs/s"},
	{"2rate", "32 goroutines: pairs/s"},
	{"4allocs", "allocs per pair"},
	{"4bytes", "bytes per pair"},
}

// writeSVG draws one group of horizontal bars per row of plotRows that has
// values: each contender's ratio to the floor (1 is the dashed line). Rows
// where more is better and rows where less is better are labelled as such.
func writeSVG(w io.Writer, r *results, ids []string, title string) error {
	type bar struct {
		id string
		v  float64
	}
	type group struct {
		label string
		bars  []bar
	}
	var groups []group
	maxV := 1.0
	for _, pr := range plotRows {
		if _, ok := r.byKey[pr.key]; !ok {
			continue
		}
		base, ok := r.value(pr.key, "floor")
		if !ok || base == 0 {
			continue
		}
		g := group{label: pr.label}
		for _, id := range ids {
			if v, ok := r.value(pr.key, id); ok {
				g.bars = append(g.bars, bar{id, v / base})
				maxV = max(maxV, v/base)
			}
		}
		groups = append(groups, g)
	}
	const (
		left, width, barH, gap, top = 260.0, 420.0, 16.0, 18.0, 40.0
	)
	h := top + 20
	for _, g := range groups {
		h += float64(len(g.bars))*barH + gap + 16
	}
	colors := []string{"#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", left+width+80, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="20" font-size="14" font-weight="bold">%s</text>`+"\n", html.EscapeString(title))
	scale := width / (maxV * 1.05)
	y := top
	for _, g := range groups {
		fmt.Fprintf(&b, `<text x="10" y="%.0f" font-weight="bold">%s (× floor)</text>`+"\n", y+12, html.EscapeString(g.label))
		y += 16
		for i, br := range g.bars {
			c := colors[i%len(colors)]
			fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="end">%s</text>`+"\n", left-6, y+barH-4, html.EscapeString(br.id))
			fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%.1f" height="%.0f" fill="%s"/>`+"\n", left, y+1, br.v*scale, barH-2, c)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.0f">%.2f×</text>`+"\n", left+br.v*scale+4, y+barH-4, br.v)
			y += barH
		}
		y += gap
	}
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="black" stroke-dasharray="4 3"/>`+"\n", left+scale, top, left+scale, y)
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
