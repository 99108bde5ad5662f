package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// Colours per tool, fixed so charts of different runs read alike.
var toolColor = map[string]string{
	"mis": "#d62728", "restic": "#1f77b4", "borg": "#2ca02c", "desync": "#9467bd",
	"casync": "#8c564b", "qcow2": "#ff7f0e", "zstd": "#7f7f7f", "raw": "#bcbd22",
}

func color(t string) string {
	if c, ok := toolColor[t]; ok {
		return c
	}
	return "#17becf"
}

const (
	chartWidth = 900
	leftMargin = 310
	barArea    = chartWidth - leftMargin - 90
)

// chart draws three panels: stored bytes per tool, then add and restore
// time per version grouped by version, one bar per tool.
func chart(res *results) string {
	var b strings.Builder
	y := 10.0
	y = storedPanel(&b, res, y)
	y = timePanel(&b, res, y+20, "Time to add each version (s, median)", res.add)
	y = timePanel(&b, res, y+20, "Time to restore each version (s, median; mis: export)", res.restore)
	return fmt.Sprintf(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%.0f" font-family="sans-serif" font-size="12">`+"\n"+
		`<rect width="100%%" height="100%%" fill="white"/>`+"\n%s</svg>\n", chartWidth, y+10, b.String())
}

func title(b *strings.Builder, y float64, s string) float64 {
	fmt.Fprintf(b, `<text x="10" y="%.0f" font-size="15" font-weight="bold">%s</text>`+"\n", y+16, html.EscapeString(s))
	return y + 28
}

func bar(b *strings.Builder, y, h, value, max float64, fill, text string) {
	w := 0.0
	if max > 0 {
		w = barArea * value / max
	}
	fmt.Fprintf(b, `<rect x="%d" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", leftMargin, y, math.Max(w, 0.5), h, fill)
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" dominant-baseline="middle" font-size="%.0f">%s</text>`+"\n", float64(leftMargin)+w+4, y+h/2, math.Min(12, h+2), html.EscapeString(text))
}

func storedPanel(b *strings.Builder, res *results, y float64) float64 {
	// Raw copies are 20-50x the rest: they would flatten every other bar.
	heading := "Stored bytes for the whole history (MiB, apparent)"
	if raw, ok := res.stored["raw"]; ok {
		heading += fmt.Sprintf("; raw copies: %.0f MiB, not drawn", float64(raw.Apparent)/(1<<20))
	}
	y = title(b, y, heading)
	var tools []string
	for _, t := range res.storeTools() {
		if t != "raw" {
			tools = append(tools, t)
		}
	}
	var max float64
	for _, t := range tools {
		max = math.Max(max, float64(res.stored[t].Apparent))
	}
	for _, t := range tools {
		v := float64(res.stored[t].Apparent)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", leftMargin-6, y+9, html.EscapeString(label(t)))
		bar(b, y, 18, v, max, color(t), fmt.Sprintf("%.1f", v/(1<<20)))
		y += 22
	}
	return y
}

func timePanel(b *strings.Builder, res *results, y float64, heading string, m map[string]map[string][]float64) float64 {
	y = title(b, y, heading)
	tools := res.storeTools()
	var max float64
	for _, t := range tools {
		for _, im := range res.images {
			v, _ := medianOf(m, t, im.Image)
			max = math.Max(max, v)
		}
	}
	// Legend: one swatch per tool.
	x := 10.0
	for _, t := range tools {
		fmt.Fprintf(b, `<rect x="%.0f" y="%.0f" width="10" height="10" fill="%s"/><text x="%.0f" y="%.0f">%s</text>`+"\n", x, y, color(t), x+14, y+9, t)
		x += 20 + 7*float64(len(t)) + 10
	}
	y += 18
	for _, im := range res.images {
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end" font-weight="bold">%s</text>`+"\n", leftMargin-6, y+10, html.EscapeString(im.Image))
		for _, t := range tools {
			v, ok := medianOf(m, t, im.Image)
			if !ok {
				continue
			}
			bar(b, y, 9, v, max, color(t), fmt.Sprintf("%.2f", v))
			y += 11
		}
		y += 8
	}
	return y
}
