package metrics

import "github.com/prometheus/client_golang/prometheus"

// Gauges of what the database holds, refreshed by the scheduler's gauges
// job (internal/scheduler/gauges.go) on every scheduler replica, so each
// replica exports current values; read them with max().
var (
	// Notifications is how many notifications are on record by status.
	// pending and failed are counted exactly through their partial indexes
	// (only those rows are read), up to NotificationsCountCap; delivered
	// and cancelled, the bulk of a large table, are Postgres's statistics
	// estimate (table rows × the status's frequency in the last ANALYZE).
	Notifications = factory.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "notifyd", Name: "notifications",
		Help: "Notifications on record by status: pending and failed counted exactly (up to 1,000,000), delivered and cancelled estimated from Postgres's table statistics.",
	}, []string{"status"})

	// Receivers counts receivers by state: their health (active, failing,
	// disabled: the receiver lifecycle) or inactive (switched off by the
	// admin, whatever their health). The gauges and lifecycle jobs set it.
	Receivers = factory.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "notifyd", Name: "receivers",
		Help: "Receivers by state: active, failing, disabled (health), inactive (switched off by the admin).",
	}, []string{"state"})

	// OldestPending is how long the most overdue pending notification has
	// been due: its creation for a first attempt, its planned time for a
	// retry. Notifications waiting for a later retry do not count.
	OldestPending = factory.NewGauge(prometheus.GaugeOpts{
		Namespace: "notifyd", Name: "oldest_pending_seconds",
		Help: "How long the most overdue pending notification has been due without being attempted (0: none is due).",
	})
)

// NotificationsCountCap bounds the exact counts of Notifications, so a
// backlog of millions costs at most this many index entries per refresh.
const NotificationsCountCap = 1_000_000
