package console

import (
	"strconv"
	"time"

	"github.com/notifyd/notifyd/internal/store"
)

// The overview's chart: attempts per minute over the last hour, stacked by
// outcome, drawn as SVG on the server (no script, no inline style).

const (
	chartMinutes = 60
	chartWidth   = 600
	chartHeight  = 160
	barWidth     = chartWidth / chartMinutes
)

// outcomeOrder stacks successes at the bottom.
var outcomeOrder = []string{"success", "failure", "timeout", "gone", "blocked"}

type bar struct {
	X, Y, W, H int
	Outcome    string
	Title      string
}

type chart struct {
	Width, Height int
	Bars          []bar
	Max           int
	Total         map[string]int
	From, To      time.Time
}

func buildChart(start time.Time, rows []store.MinuteOutcome) chart {
	counts := make([]map[string]int, chartMinutes)
	ch := chart{Width: chartWidth, Height: chartHeight, Total: map[string]int{}, From: start,
		To: start.Add(chartMinutes * time.Minute)}
	for _, r := range rows {
		i := int(r.Minute.Sub(start) / time.Minute)
		if i < 0 || i >= chartMinutes {
			continue
		}
		if counts[i] == nil {
			counts[i] = map[string]int{}
		}
		counts[i][r.Outcome] += r.Count
		ch.Total[r.Outcome] += r.Count
	}
	for _, m := range counts {
		sum := 0
		for _, n := range m {
			sum += n
		}
		ch.Max = max(ch.Max, sum)
	}
	if ch.Max == 0 {
		return ch
	}
	for i, m := range counts {
		y := chartHeight
		for _, o := range outcomeOrder {
			n := m[o]
			if n == 0 {
				continue
			}
			h := max(1, n*chartHeight/ch.Max)
			y -= h
			minute := start.Add(time.Duration(i) * time.Minute).UTC().Format("15:04")
			ch.Bars = append(ch.Bars, bar{X: i * barWidth, Y: y, W: barWidth - 1, H: h, Outcome: o,
				Title: minute + " " + o + ": " + strconv.Itoa(n)})
		}
	}
	return ch
}
