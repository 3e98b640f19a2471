package console

import (
	"context"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/tasks"
)

type overviewData struct {
	Hour, Day   map[string]int
	Chart       chart
	Percentiles []float64
	Queues      []*asynq.QueueInfo
	QueueError  string
	Circuits    []openCircuit
	Worst       []store.ReceiverSummary
	WorstDay    string
	Now         time.Time
}

type openCircuit struct {
	ID, Name string
	Until    time.Time
}

// overview is the operator's first page: what happened in the last hour and
// day, the queues, the open circuits and yesterday's worst receivers.
func (c *Console) overview(w http.ResponseWriter, r *http.Request, s *session) error {
	d, err := c.overviewFigures(r.Context())
	if err != nil {
		return err
	}
	c.render(w, http.StatusOK, "overview", &view{Title: "Overview", Session: s, Nav: "overview", Data: d})
	return nil
}

// overviewFigures returns the overview's figures, at most figuresTTL old
// but while a refresh runs (figurecache.go).
func (c *Console) overviewFigures(ctx context.Context) (*overviewData, error) {
	d, _, err := c.overviewCache.get(ctx, c.cfg.Now(), c.cfg.Logger)
	return d, err
}

// computeOverview reads every figure of the overview.
func (c *Console) computeOverview(ctx context.Context) (*overviewData, error) {
	now := c.cfg.Now()
	d := &overviewData{Now: now}
	var err error
	if d.Hour, err = c.cfg.Store.StatusCounts(ctx, now.Add(-time.Hour)); err != nil {
		return nil, err
	}
	if d.Day, err = c.cfg.Store.StatusCounts(ctx, now.Add(-24*time.Hour)); err != nil {
		return nil, err
	}
	start := now.Truncate(time.Minute).Add(-(chartMinutes - 1) * time.Minute)
	perMinute, err := c.cfg.Store.AttemptsPerMinute(ctx, start, now.Add(-24*time.Hour))
	if err != nil {
		return nil, err
	}
	d.Chart = buildChart(start, perMinute)
	if d.Percentiles, err = c.cfg.Store.FirstAttemptPercentiles(ctx, now.Add(-time.Hour)); err != nil {
		return nil, err
	}
	d.Queues, d.QueueError = c.queues()
	names := map[uuid.UUID]string{}
	if rs, err := c.cfg.Store.ReceiverNames(ctx); err == nil {
		for _, n := range rs {
			names[n.ID] = n.Name
		}
	}
	for id, o := range c.openCircuits(ctx) {
		d.Circuits = append(d.Circuits, openCircuit{ID: id.String(), Name: names[id], Until: o.Until})
	}
	yesterday := now.UTC().AddDate(0, 0, -1)
	d.WorstDay = yesterday.Format(time.DateOnly)
	worst, err := c.cfg.Store.DailySummaries(ctx, yesterday)
	if err != nil {
		return nil, err
	}
	for _, w := range worst {
		if len(d.Worst) < 5 && w.Failed > 0 {
			d.Worst = append(d.Worst, w)
		}
	}
	return d, nil
}

// queues reads notifyd's Asynq queues, every shard's included: pending,
// scheduled, retry and archived tasks each.
func (c *Console) queues() ([]*asynq.QueueInfo, string) {
	if c.inspect == nil {
		return nil, "no Redis configured"
	}
	known, err := c.inspect.Queues()
	if err != nil {
		return nil, "reading the queues: " + err.Error()
	}
	var out []*asynq.QueueInfo
	for _, q := range tasks.QueuesAmong(known) {
		info, err := c.inspect.GetQueueInfo(q)
		if err != nil {
			// A queue that never held a task does not exist yet.
			info = &asynq.QueueInfo{Queue: q}
		}
		out = append(out, info)
	}
	return out, ""
}
