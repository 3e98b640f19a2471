package main

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/apitest"
	"github.com/notifyd/notifyd/internal/circuit"
	"github.com/notifyd/notifyd/internal/registry"
	"github.com/notifyd/notifyd/internal/tasks"
	"github.com/notifyd/notifyd/internal/testenv"
	"github.com/notifyd/notifyd/notifier"
)

// TestMetricsCountWhatHappened runs the real binary as separate api,
// scheduler and worker processes (each process's metrics are its own, so
// every value is exact) and checks the values operators read:
//
//  1. with no worker, 8 notifications accepted over HTTP are a backlog: 8
//     pending tasks in the queue depth (api), 8 pending notifications and
//     a growing oldest-due age (scheduler), 8 POSTs counted by route,
//     method and status class, plus the 4xx answers and an unmatched path;
//  2. a worker delivers 5 and fails 3 (a receiver answering 500, one
//     attempt each): attempts and terminal counters moved by exactly that,
//     the queue and the pending gauge drain to 0, failed reads 3, and
//     delivered reads 5 once the table is analysed;
//  3. the connection pool gauges report the configured sizes, and an open
//     circuit recorded in Redis shows in the open circuits gauge.
func TestMetricsCountWhatHappened(t *testing.T) {
	t.Parallel()
	dsn := testenv.Database(t)
	ropt := testenv.Redis(t)
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	settings := map[string]string{
		"NOTIFYD_ENV":                   "development",
		"NOTIFYD_DATABASE_URL":          dsn + sep + "pool_max_conns=6",
		"NOTIFYD_REDIS_URL":             fmt.Sprintf("redis://%s/%d?pool_size=7", ropt.Addr, ropt.DB),
		"NOTIFYD_ADMIN_TOKEN":           apitest.AdminToken,
		"NOTIFYD_PRODUCER_TOKENS":       apitest.ProducerToken,
		"NOTIFYD_ALLOW_PRIVATE_TARGETS": "true",
		"NOTIFYD_LOG_FORMAT":            "text",
		"NOTIFYD_RETRY_MAX_ATTEMPTS":    "1",
		"NOTIFYD_GAUGES_SCHEDULE":       "@every 1s",
	}
	migrate := exec.Command(notifydBinary(t), "migrate")
	migrate.Env = withEnv(with(settings, "NOTIFYD_DATABASE_URL", dsn)) // goose's driver knows no pool settings
	if out, err := migrate.CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	apiAddr, apiOps, schedOps, workerOps := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	startCommand(t, "api", "http://"+apiAddr, with(settings, "NOTIFYD_HTTP_ADDR", apiAddr, "NOTIFYD_OPS_ADDR", apiOps))
	startCommand(t, "scheduler", "http://"+schedOps, with(settings, "NOTIFYD_OPS_ADDR", schedOps))

	api := apitest.NewClient(t, "http://"+apiAddr)
	ok := apitest.NewCallbackServer(t, http.StatusOK)
	broken := apitest.NewCallbackServer(t, http.StatusInternalServerError)
	good, bad := api.CreateReceiver(ok.URL, nil), api.CreateReceiver(broken.URL, nil)
	idle := api.CreateReceiver(ok.URL, nil)
	api.Call(http.MethodPatch, "/v1/receivers/"+idle.ID, apitest.AdminToken, map[string]any{"active": false}, http.StatusOK, nil)
	send := func(r apitest.Receiver, n int) {
		for i := range n {
			api.Call(http.MethodPost, "/v1/notifications", apitest.ProducerToken, map[string]any{
				"receiver_id": r.ID, "event_type": "trade.paid", "idempotency_key": fmt.Sprintf("order-%d", i), "payload": map[string]int{"n": i},
			}, http.StatusAccepted, nil)
		}
	}
	send(good, 5)
	send(bad, 3)
	// Answers the client got wrong: 401, 404 on a route, 404 on no route.
	api.Call(http.MethodPost, "/v1/notifications", "", map[string]any{}, http.StatusUnauthorized, nil)
	api.Call(http.MethodGet, "/v1/notifications/00000000-0000-0000-0000-000000000001", apitest.AdminToken, nil, http.StatusNotFound, nil)
	api.Call(http.MethodGet, "/no/such/path", apitest.AdminToken, nil, http.StatusNotFound, nil)

	// One receiver's circuit open fleet-wide (one that gets no
	// notification here, so deliveries are not deferred).
	rdb := redis.NewClient(ropt)
	defer rdb.Close()
	if err := circuit.SetOpen(context.Background(), rdb, uuid.New(), circuit.Open{Until: time.Now().Add(time.Hour), Cooldown: time.Hour}); err != nil {
		t.Fatal(err)
	}

	wait := 60 * time.Second
	waitMetric(t, apiOps, "notifyd_queue_tasks", labels("queue", "notify", "state", "pending"), 8, wait)
	waitMetric(t, apiOps, "notifyd_queue_tasks", labels("queue", "notify_retry", "state", "pending"), 0, wait)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"notifyd_http_requests_total", labels("route", "/v1/notifications", "method", "POST", "code", "2xx"), 8},
		{"notifyd_http_requests_total", labels("route", "/v1/notifications", "method", "POST", "code", "4xx"), 1},
		{"notifyd_http_requests_total", labels("route", "/v1/receivers", "method", "POST", "code", "2xx"), 3},
		{"notifyd_http_requests_total", labels("route", "/v1/receivers/:id", "method", "PATCH", "code", "2xx"), 1},
		{"notifyd_http_requests_total", labels("route", "/v1/notifications/:id", "method", "GET", "code", "4xx"), 1},
		{"notifyd_http_requests_total", labels("route", "unmatched", "method", "GET", "code", "4xx"), 1},
		{"notifyd_http_request_duration_seconds", labels("route", "/v1/notifications", "method", "POST"), 9},
		{"notifyd_notifications_accepted_total", labels("source", "http"), 8},
		{"notifyd_db_pool_max_connections", labels("pool", "notifyd"), 6},
		{"notifyd_redis_pool_max_connections", nil, 7},
		{"notifyd_circuits_open", nil, 1},
	} {
		if got := metricValue(t, scrape(t, apiOps), c.name, c.labels); got != c.want {
			t.Errorf("api: %s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	m := scrape(t, apiOps)
	if got := metricValue(t, m, "notifyd_queue_latency_seconds", labels("queue", "notify")); got <= 0 {
		t.Errorf("api: queue latency %v, want the oldest pending task's wait", got)
	}
	if got := metricValue(t, m, "notifyd_db_pool_acquires_total", labels("pool", "notifyd")); got < 8 {
		t.Errorf("api: %v Postgres acquires, want at least one per accepted notification", got)
	}
	if got := metricValue(t, m, "notifyd_redis_pool_hits_total", nil) + metricValue(t, m, "notifyd_redis_pool_misses_total", nil); got < 8 {
		t.Errorf("api: %v Redis pool gets, want at least one per queued notification", got)
	}
	waitMetric(t, schedOps, "notifyd_notifications", labels("status", "pending"), 8, wait)
	waitMetric(t, schedOps, "notifyd_receivers", labels("state", "active"), 2, wait)
	waitMetric(t, schedOps, "notifyd_receivers", labels("state", "inactive"), 1, wait)
	testenv.WaitFor(t, wait, "oldest pending ≥ 1 s", func() bool {
		return metricValue(t, scrape(t, schedOps), "notifyd_oldest_pending_seconds", nil) >= 1
	})

	startCommand(t, "worker", "http://"+workerOps, with(settings, "NOTIFYD_OPS_ADDR", workerOps))
	waitMetric(t, workerOps, "notifyd_notifications_terminal_total", labels("status", "delivered"), 5, wait)
	waitMetric(t, workerOps, "notifyd_notifications_terminal_total", labels("status", "failed"), 3, wait)
	m = scrape(t, workerOps)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"notifyd_delivery_attempts_total", labels("outcome", "success"), 5},
		{"notifyd_delivery_attempts_total", labels("outcome", "failure"), 3},
		{"notifyd_delivery_attempt_duration_seconds", nil, 8},
		{"notifyd_first_attempt_delay_seconds", nil, 8},
	} {
		if got := metricValue(t, m, c.name, c.labels); got != c.want {
			t.Errorf("worker: %s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if ok.Hits() != 5 || broken.Hits() != 3 {
		t.Errorf("receivers got %d and %d callbacks, want 5 and 3", ok.Hits(), broken.Hits())
	}
	waitMetric(t, apiOps, "notifyd_queue_tasks", labels("queue", "notify", "state", "pending"), 0, wait)
	waitMetric(t, schedOps, "notifyd_notifications", labels("status", "pending"), 0, wait)
	waitMetric(t, schedOps, "notifyd_notifications", labels("status", "failed"), 3, wait)
	waitMetric(t, schedOps, "notifyd_oldest_pending_seconds", nil, 0, wait)
	// delivered is the statistics' estimate: exact once ANALYZE has seen
	// this small table whole (autovacuum does it in production).
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `ANALYZE notifications`); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, schedOps, "notifyd_notifications", labels("status", "delivered"), 5, wait)
}

// with is settings plus key-value pairs.
func with(settings map[string]string, kv ...string) map[string]string {
	out := maps.Clone(settings)
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func labels(kv ...string) map[string]string { return with(map[string]string{}, kv...) }

// scrape reads the metrics an ops listener serves.
func scrape(t *testing.T, opsAddr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + opsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/metrics: %s", opsAddr, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s/metrics: %v", opsAddr, err)
	}
	return families
}

// metricValue is the value of the series of name whose labels include
// want (a histogram's: its count), 0 when there is none; several matching
// series fail the test.
func metricValue(t *testing.T, families map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	var found []float64
	for _, m := range families[name].GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			match = match && have[k] == v
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			found = append(found, m.Counter.GetValue())
		case m.Gauge != nil:
			found = append(found, m.Gauge.GetValue())
		case m.Histogram != nil:
			found = append(found, float64(m.Histogram.GetSampleCount()))
		}
	}
	if len(found) > 1 {
		t.Fatalf("%s%v matches %d series", name, want, len(found))
	}
	if len(found) == 0 {
		return 0
	}
	return found[0]
}

// waitMetric polls an ops listener until the series has the value want.
func waitMetric(t *testing.T, opsAddr, name string, lbls map[string]string, want float64, timeout time.Duration) {
	t.Helper()
	var got float64
	testenv.WaitFor(t, timeout, fmt.Sprintf("%s%v = %v (last %v)", name, lbls, want, &got), func() bool {
		got = metricValue(t, scrape(t, opsAddr), name, lbls)
		return got == want
	})
}

// TestRelayLagMetric runs the real `notifyd relay` on an outbox row written
// 10 minutes ago that it cannot send yet (the receiver registry is not in
// Redis): the relay lag gauge reads the row's age and the backlog 1. Once
// the registry is there the row is sent, and both fall to 0.
func TestRelayLagMetric(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	outboxURL, pool := testenv.Pool(t)
	if err := notifier.MigrateOutbox(ctx, pool, ""); err != nil {
		t.Fatal(err)
	}
	receiver := uuid.New()
	_, err := pool.Exec(ctx, `INSERT INTO notifyd_outbox (notification_id, receiver_id, event_type, idempotency_key, payload, created_at)
		VALUES ($1, $2, 'trade.paid', 'order-1', '{"a":1}', now() - interval '10 minutes')`, tasks.NotificationID(receiver, "order-1"), receiver)
	if err != nil {
		t.Fatal(err)
	}
	ropt := testenv.Redis(t)
	ops := freeAddr(t)
	startCommand(t, "relay", "http://"+ops, map[string]string{
		"NOTIFYD_ENV":                 "development",
		"NOTIFYD_OUTBOX_DATABASE_URL": outboxURL,
		"NOTIFYD_DATABASE_URL":        testenv.Database(t),
		"NOTIFYD_REDIS_URL":           fmt.Sprintf("redis://%s/%d", ropt.Addr, ropt.DB),
		"NOTIFYD_OPS_ADDR":            ops,
		"NOTIFYD_LOG_FORMAT":          "text",
	})
	wait := 60 * time.Second
	waitMetric(t, ops, "notifyd_outbox_backlog", nil, 1, wait)
	m := scrape(t, ops)
	if lag := metricValue(t, m, "notifyd_outbox_oldest_unsent_seconds", nil); lag < 600 || lag > 900 {
		t.Errorf("relay lag %v s, want the row's age, about 600 s", lag)
	}
	if n := metricValue(t, m, "notifyd_outbox_failed_total", labels("reason", "registry_unavailable")); n < 1 {
		t.Errorf("registry_unavailable counted %v times, want at least once", n)
	}
	if n := metricValue(t, m, "notifyd_db_pool_max_connections", labels("pool", "outbox")); n < 1 {
		t.Errorf("outbox pool max connections %v, want the pool reported", n)
	}

	rdb := redis.NewClient(ropt)
	defer rdb.Close()
	if err := registry.Sync(ctx, rdb, map[uuid.UUID]bool{receiver: true}); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, ops, "notifyd_outbox_relayed_total", nil, 1, wait)
	waitMetric(t, ops, "notifyd_outbox_backlog", nil, 0, wait)
	waitMetric(t, ops, "notifyd_outbox_oldest_unsent_seconds", nil, 0, wait)
}
