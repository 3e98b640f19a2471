package query

import (
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/notifyd/notifyd/internal/store"
)

// Receiver health summaries: the daily snapshots the scheduler's summary job
// stores (internal/scheduler), and a live count over the last 24 hours.

const (
	defaultSummaryDays = 7
	maxSummaryDays     = 90
	liveSummaryWindow  = 24 * time.Hour
)

// summaryCounts is what a summary says about a set of notifications.
type summaryCounts struct {
	Delivered int `json:"delivered"`
	Failed    int `json:"failed"`
	Pending   int `json:"pending"`
	Cancelled int `json:"cancelled"`
	// FailureRate is failed / (delivered + failed); null while nothing has
	// finished.
	FailureRate  *float64 `json:"failure_rate"`
	Attempts     int      `json:"attempts"`
	AvgAttemptMS *float64 `json:"avg_attempt_ms"`
	P95AttemptMS *float64 `json:"p95_attempt_ms"`
}

func countsOf(r *store.ReceiverSummary) summaryCounts {
	return summaryCounts{Delivered: r.Delivered, Failed: r.Failed, Pending: r.Pending, Cancelled: r.Cancelled,
		FailureRate: r.FailureRate, Attempts: r.Attempts, AvgAttemptMS: r.AvgAttemptMS, P95AttemptMS: r.P95AttemptMS}
}

// dailySummaryView is one receiver's snapshot of one UTC day.
type dailySummaryView struct {
	ReceiverID   *uuid.UUID `json:"receiver_id,omitempty"`
	ReceiverName string     `json:"receiver_name,omitempty"`
	// ReceiverStatus is the receiver's health state now (active, failing,
	// disabled), so the worst rows say whether it has been dealt with.
	ReceiverStatus string `json:"receiver_status,omitempty"`
	Day            string `json:"day"`
	summaryCounts
	ComputedAt time.Time `json:"computed_at"`
}

func dailyView(r *store.ReceiverSummary, withReceiver bool) dailySummaryView {
	v := dailySummaryView{Day: r.Day.Format(time.DateOnly), summaryCounts: countsOf(r), ComputedAt: r.ComputedAt}
	if withReceiver {
		id := r.ReceiverID
		v.ReceiverID, v.ReceiverName, v.ReceiverStatus = &id, r.ReceiverName, r.ReceiverStatus
	}
	return v
}

// liveSummaryView counts the notifications created in [from, to).
type liveSummaryView struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	summaryCounts
}

// receiverSummary answers GET /v1/receivers/:id/summary?days=N: the receiver's
// daily snapshots of the N complete UTC days before today (newest first;
// days without notifications have none), and live counts over the last 24 h.
func (s *Server) receiverSummary(c echo.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	days := defaultSummaryDays
	if v := c.QueryParam("days"); v != "" {
		days, err = strconv.Atoi(v)
		if err != nil || days < 1 || days > maxSummaryDays {
			return fieldError("days", "must be a whole number from 1 to "+strconv.Itoa(maxSummaryDays))
		}
	}
	ctx := c.Request().Context()
	r, err := s.store.GetReceiver(ctx, id)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	snapshots, err := s.store.ReceiverDailySummaries(ctx, id, today.AddDate(0, 0, -days), today.AddDate(0, 0, -1))
	if err != nil {
		return err
	}
	from := now.Add(-liveSummaryWindow)
	live, err := s.store.LiveSummary(ctx, id, from, now)
	if err != nil {
		return err
	}
	data := make([]dailySummaryView, len(snapshots))
	for i := range snapshots {
		data[i] = dailyView(&snapshots[i], false)
	}
	return c.JSON(http.StatusOK, map[string]any{
		"data":   data,
		"live":   liveSummaryView{From: from, To: now, summaryCounts: countsOf(live)},
		"health": healthOf(r),
	})
}

// receiversSummary answers GET /v1/receivers/summary?day=YYYY-MM-DD (admin):
// every receiver's snapshot of that UTC day (default yesterday), worst
// failure rate first, so an operator sees the unhealthy receivers at the top.
func (s *Server) receiversSummary(c echo.Context) error {
	day := time.Now().UTC().AddDate(0, 0, -1)
	if v := c.QueryParam("day"); v != "" {
		var err error
		day, err = time.Parse(time.DateOnly, v)
		if err != nil {
			return fieldError("day", "must be a date, YYYY-MM-DD")
		}
	}
	rows, err := s.store.DailySummaries(c.Request().Context(), day)
	if err != nil {
		return err
	}
	data := make([]dailySummaryView, len(rows))
	for i := range rows {
		data[i] = dailyView(&rows[i], true)
	}
	return c.JSON(http.StatusOK, map[string]any{"day": day.Format(time.DateOnly), "data": data})
}
