package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Dist summarises a set of durations, in milliseconds.
type Dist struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
	Mean  float64 `json:"mean_ms"`
}

func distOf(ds []time.Duration) Dist {
	if len(ds) == 0 {
		return Dist{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return Dist{
		Count: len(s),
		P50:   ms(quantile(s, 0.50)),
		P99:   ms(quantile(s, 0.99)),
		Max:   ms(s[len(s)-1]),
		Mean:  ms(sum / time.Duration(len(s))),
	}
}

// quantile of sorted s, nearest rank.
func quantile(s []time.Duration, q float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 2) }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func (d Dist) String() string {
	return fmt.Sprintf("p50 %s  p99 %s  max %s", fmtMS(d.P50), fmtMS(d.P99), fmtMS(d.Max))
}

func fmtMS(v float64) string {
	switch {
	case math.Abs(v) >= 10000:
		return fmt.Sprintf("%.1f s", v/1000)
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.2f ms", v)
}

// thousands formats n with "," separators.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
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

func fmtRate(v float64) string { return thousands(int64(math.Round(v))) + "/s" }

// verdict compares value with a target; higher is better when atLeast.
// It says by how much a missed target is missed.
func verdict(value, target float64, atLeast bool) (met bool, text string) {
	if atLeast {
		if value >= target {
			return true, fmt.Sprintf("met (%.2f× target)", value/target)
		}
		return false, fmt.Sprintf("MISSED by %.0f%% (%.2f× target)", (1-value/target)*100, value/target)
	}
	if value <= target {
		return true, fmt.Sprintf("met (%.2f× limit)", value/target)
	}
	return false, fmt.Sprintf("MISSED: %.1f× the limit", value/target)
}
