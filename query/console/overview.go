package console

import (
	"context"
	"net/http"
	"sync"
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

// overviewTTL is how old the overview's figures may be. Counting a day of
// notifications and their attempts takes long on a large table (about a
// second at 10 M rows), so the figures are computed at most this often, in
// the background once there are some, and every page load reads them.
const overviewTTL = 15 * time.Second

// overviewCache holds the last figures and refreshes them.
type overviewCache struct {
	mu         sync.Mutex
	data       *overviewData
	refreshing bool
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

// overviewFigures returns fresh figures, or stale ones while a refresh runs
// in the background; the first call computes them.
func (c *Console) overviewFigures(ctx context.Context) (*overviewData, error) {
	oc := &c.overviewCache
	oc.mu.Lock()
	d := oc.data
	stale := d == nil || c.cfg.Now().Sub(d.Now) >= overviewTTL
	if d != nil && stale && !oc.refreshing {
		oc.refreshing = true
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			fresh, err := c.computeOverview(ctx)
			oc.mu.Lock()
			defer oc.mu.Unlock()
			oc.refreshing = false
			if err != nil {
				c.cfg.Logger.Warn("console: overview refresh", "err", err)
				return
			}
			oc.data = fresh
		}()
	}
	oc.mu.Unlock()
	if d != nil {
		return d, nil
	}
	d, err := c.computeOverview(ctx)
	if err != nil {
		return nil, err
	}
	oc.mu.Lock()
	oc.data = d
	oc.mu.Unlock()
	return d, nil
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

// queues reads notifyd's Asynq queues: pending, scheduled, retry and
// archived tasks each.
func (c *Console) queues() ([]*asynq.QueueInfo, string) {
	if c.inspect == nil {
		return nil, "no Redis configured"
	}
	var out []*asynq.QueueInfo
	for _, q := range []string{tasks.QueueFirst, tasks.QueueRetry} {
		info, err := c.inspect.GetQueueInfo(q)
		if err != nil {
			// A queue that never held a task does not exist yet.
			info = &asynq.QueueInfo{Queue: q}
		}
		out = append(out, info)
	}
	return out, ""
}
