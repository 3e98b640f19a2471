package main

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// LatencyResult is scenario 3.
type LatencyResult struct {
	OfferedRate  int     `json:"offered_per_s"`
	AchievedRate float64 `json:"achieved_per_s"`
	Sent         int     `json:"sent"`
	// Enqueue (the Notify call starting) → the attempt's started_at as the
	// worker recorded it in delivery_attempts.
	FirstAttempt Dist `json:"enqueue_to_first_attempt_start"`
	// Enqueue → the receiver's handler running (request headers read).
	ReceiverGot Dist `json:"enqueue_to_receiver_got_request"`
	// Enqueue → the bench seeing status delivered in Postgres (polled
	// every 5 ms: includes up to 5 ms of poll delay).
	DeliveredVisible Dist `json:"enqueue_to_delivered_visible"`
}

func (b *bench) latency(ctx context.Context) error {
	cfg := b.cfg
	c, err := b.startNotifyd(ctx)
	if err != nil {
		return err
	}
	defer b.stopChild(c)
	rs := b.okReceivers
	run, err := b.steady(ctx, "latency", func(i int) (benchReceiver, string) {
		return rs[i%len(rs)], "lat-" + strconv.Itoa(i)
	}, func(int) bool { return true }, 2*time.Minute)
	if err != nil {
		return err
	}
	r := &LatencyResult{
		OfferedRate: cfg.rate, Sent: run.sent, AchievedRate: round(float64(run.sent)/run.elapsed.Seconds(), 1),
		FirstAttempt:     distOf(since(run.enq, run.first)),
		ReceiverGot:      distOf(since(run.enq, run.receiver)),
		DeliveredVisible: distOf(since(run.enq, run.visible)),
	}
	b.res.Latency = r
	b.prog.done("latency: %d sent at %.0f/s; enqueue → first attempt %s", r.Sent, r.AchievedRate, r.FirstAttempt)
	met, text := verdict(r.FirstAttempt.P99, targetFirstP99MS, false)
	b.target("latency_first_attempt_p99", met, text)
	b.rows = append(b.rows,
		row{"3 latency", fmt.Sprintf("enqueue → first attempt start (worker's started_at): %s, at %.0f/s for %s", r.FirstAttempt, r.AchievedRate, cfg.duration), "p99 ≤ 50 ms", text},
		row{"", "enqueue → receiver got the request: " + r.ReceiverGot.String(), "", ""},
		row{"", "enqueue → delivered visible in Postgres (5 ms polls): " + r.DeliveredVisible.String(), "", ""},
	)
	return nil
}

func since(enq, at map[string]time.Time) []time.Duration {
	out := make([]time.Duration, 0, len(at))
	for id, t := range at {
		if e, ok := enq[id]; ok {
			out = append(out, t.Sub(e))
		}
	}
	return out
}
