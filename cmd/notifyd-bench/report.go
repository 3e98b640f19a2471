package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
)

// Results is the JSON line: every scenario key is present, null when the
// scenario was not run.
type Results struct {
	Bench      string              `json:"bench"`
	Env        Env                 `json:"env"`
	Params     map[string]any      `json:"params"`
	Throughput *ThroughputResult   `json:"throughput"`
	Storage    *StorageResult      `json:"storage"`
	Ceiling    *CeilingResult      `json:"ceiling"`
	Ingest     *IngestResult       `json:"ingest"`
	Latency    *LatencyResult      `json:"latency"`
	Retry      *RetryResult        `json:"retry"`
	Isolation  *IsolationResult    `json:"isolation"`
	Query      *QueryResult        `json:"query"`
	Scaling    *ScalingResult      `json:"scaling"` // throughput per --workers / --queue-shards (scale.go)
	Sizing     *SizingResult       `json:"sizing"`  // the capacity model (sizing.go)
	Targets    map[string]*Verdict `json:"targets"`
	Errors     map[string]string   `json:"errors,omitempty"`
}

// Verdict is one target's outcome.
type Verdict struct {
	Met  bool   `json:"met"`
	Text string `json:"text"`
}

// row is one line of the table.
type row struct{ scenario, figure, target, verdict string }

func (b *bench) target(name string, met bool, text string) {
	b.res.Targets[name] = &Verdict{Met: met, Text: text}
}

func (b *bench) report() {
	line, err := json.Marshal(b.res)
	if err != nil {
		line = []byte(fmt.Sprintf(`{"bench":"notifyd","errors":{"json":%q}}`, err.Error()))
	}
	if b.cfg.jsonOnly {
		fmt.Fprintf(b.stdout, "%s\n", line)
		return
	}
	e := b.res.Env
	fmt.Fprintf(b.stdout, "\nnotifyd benchmark — %d cores (%s), %s, notifyd %s, asynq %s, PostgreSQL %s, Redis %s\n",
		e.Cores, e.CPUModel, e.Go, e.Notifyd, e.Asynq, e.Postgres, e.Redis)
	fmt.Fprintf(b.stdout, "started %s, load average before %s; n=%d receivers=%d concurrency=%d\n\n",
		e.Started, e.LoadAvgBefore, b.cfg.n, b.cfg.receivers, b.cfg.concurrency)
	tw := tabwriter.NewWriter(b.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tfigure\ttarget\tresult")
	fmt.Fprintln(tw, "--------\t------\t------\t------")
	for _, r := range b.rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.scenario, r.figure, r.target, r.verdict)
	}
	tw.Flush()
	printSizing(b.stdout, b.res.Sizing)
	fmt.Fprintf(b.stdout, "\n%s\n", line)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// median returns the run with the median figure (the lower middle one for
// an even count).
func median[T any](runs []T, figure func(T) float64) T {
	sorted := slices.Clone(runs)
	slices.SortFunc(sorted, func(a, b T) int { return cmp.Compare(figure(a), figure(b)) })
	return sorted[(len(sorted)-1)/2]
}

func runsNote(rates []float64) string {
	if len(rates) < 2 {
		return ""
	}
	parts := make([]string, len(rates))
	for i, r := range rates {
		parts[i] = thousands(int64(math.Round(r)))
	}
	return "; median of " + strings.Join(parts, ", ")
}

// runLabel names repetition rep (from 0) of a scenario run repeat times.
func runLabel(name string, rep, repeat int) string {
	if repeat > 1 {
		return fmt.Sprintf("%s (run %d of %d)", name, rep+1, repeat)
	}
	return name
}

// ratioRow adds a scenario's row whose figure is judged as a ratio to
// scenario 1's throughput (share formats it as a percentage), and records
// the verdict as target name. Without scenario 1 (ratio nil) there is no
// verdict.
func (b *bench) ratioRow(scenario, figure, share string, ratio *float64, name string, target float64, targetText string) {
	if ratio == nil {
		b.rows = append(b.rows, row{scenario, figure, targetText + " (needs throughput)", "-"})
		return
	}
	met, text := verdict(*ratio, target, true)
	b.target(name, met, text)
	b.rows = append(b.rows, row{scenario, figure + fmt.Sprintf(share, *ratio*100), targetText, text})
}
