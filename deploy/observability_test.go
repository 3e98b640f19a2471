package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/notifyd/notifyd/internal/metrics"
	"github.com/notifyd/notifyd/notifier"
)

const (
	dashboardFile  = "observability/grafana-dashboard.json"
	alertsFile     = "observability/alerts.yml"
	alertTestsFile = "observability/alerts_test.yml"
)

// promtool is Debian's (package prometheus); scripts/services.sh installs it.
func promtool(t *testing.T, args ...string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: run scripts/services.sh (it installs Debian's prometheus package)")
	}
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestAlertRulesPassPromtool: the rules load in Prometheus (check rules),
// and each alert fires on the series it is for and not on others (test
// rules, alerts_test.yml).
func TestAlertRulesPassPromtool(t *testing.T) {
	promtool(t, "check", "rules", alertsFile)
	promtool(t, "test", "rules", alertTestsFile)
}

// exportedMetric is a metric notifyd exports and its label names.
type exportedMetric struct{ labels []string }

var descPattern = regexp.MustCompile(`^Desc\{fqName: "([^"]+)",.*variableLabels: \{([^}]*)\}\}$`)

// exported is every metric notifyd's processes and the outbox relay export,
// from their own descriptions.
func exported(t *testing.T) map[string]exportedMetric {
	t.Helper()
	ch := make(chan *prometheus.Desc)
	go func() {
		metrics.Describe(ch)
		notifier.DescribeMetrics(ch)
		close(ch)
	}()
	out := map[string]exportedMetric{}
	for d := range ch {
		m := descPattern.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read description %s", d)
		}
		var lbls []string
		if m[2] != "" {
			lbls = strings.Split(m[2], ",")
		}
		out[m[1]] = exportedMetric{labels: lbls}
	}
	if len(out) < 40 {
		t.Fatalf("only %d metrics described: the descriptions are not being read", len(out))
	}
	return out
}

// grafanaVariables are replaced by a duration before parsing, as Grafana
// does before sending the query.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// checkQuery parses a PromQL expression and checks that every series it
// selects is a metric notifyd exports (a histogram's _bucket, _sum or
// _count series included) and that its label matchers use that metric's
// labels. It returns the series names it selects.
func checkQuery(t *testing.T, where, expr string, known map[string]exportedMetric) []string {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaVariables.Replace(expr))
	if err != nil {
		t.Errorf("%s: %q does not parse: %v", where, expr, err)
		return nil
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		names = append(names, vs.Name)
		base, extra := vs.Name, []string{"instance", "job"}
		if _, ok := known[base]; !ok {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if _, ok := known[strings.TrimSuffix(base, suffix)]; ok && strings.HasSuffix(base, suffix) {
					base = strings.TrimSuffix(base, suffix)
					if suffix == "_bucket" {
						extra = append(extra, "le")
					}
				}
			}
		}
		m, ok := known[base]
		if !ok {
			t.Errorf("%s: %q selects %q, which notifyd does not export", where, expr, vs.Name)
			return nil
		}
		for _, lm := range vs.LabelMatchers {
			if lm.Name != model.MetricNameLabel && !slices.Contains(m.labels, lm.Name) && !slices.Contains(extra, lm.Name) {
				t.Errorf("%s: %q matches label %q, which %s does not have (labels %v)", where, expr, lm.Name, base, m.labels)
			}
		}
		return nil
	})
	if len(names) == 0 {
		t.Errorf("%s: %q selects no metric", where, expr)
	}
	return names
}

// dashboardTargets are the panels' queries by panel title.
func dashboardTargets(t *testing.T) map[string][]string {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	out := map[string][]string{}
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			out[p.Title] = append(out[p.Title], tg.Expr)
		}
	}
	return out
}

// TestDashboardQueriesNameExportedMetrics loads the Grafana dashboard: every
// query parses and selects only metrics notifyd exports, with their labels,
// and the panels an operator needs are there.
func TestDashboardQueriesNameExportedMetrics(t *testing.T) {
	known := exported(t)
	used := map[string]bool{}
	for title, exprs := range dashboardTargets(t) {
		for _, e := range exprs {
			for _, n := range checkQuery(t, "panel "+title, e, known) {
				used[n] = true
			}
		}
	}
	for _, need := range []struct{ what, metric string }{
		{"throughput by outcome", "notifyd_delivery_attempts_total"},
		{"first-attempt latency", "notifyd_first_attempt_delay_seconds_bucket"},
		{"queue depth", "notifyd_queue_tasks"},
		{"retries", "notifyd_retry_lateness_seconds_bucket"},
		{"open circuits", "notifyd_circuits_open"},
		{"receivers by health", "notifyd_receivers"},
		{"API latency", "notifyd_http_request_duration_seconds_bucket"},
		{"pool saturation", "notifyd_db_pool_max_connections"},
		{"pool saturation (Redis)", "notifyd_redis_pool_max_connections"},
		{"relay lag", "notifyd_outbox_oldest_unsent_seconds"},
	} {
		if !used[need.metric] {
			t.Errorf("the dashboard shows no %s (%s)", need.what, need.metric)
		}
	}
}

// TestAlertsNameExportedMetrics: every alert's expression selects metrics
// notifyd exports, README says what to do when it fires, and the alerts an
// operator is paged for exist.
func TestAlertsNameExportedMetrics(t *testing.T) {
	known := exported(t)
	raw, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatal(err)
	}
	var alerts []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			checkQuery(t, "alert "+r.Alert, r.Expr, known)
			if r.Annotations["summary"] == "" || r.Annotations["runbook"] == "" {
				t.Errorf("alert %s needs a summary and a runbook", r.Alert)
			}
		}
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, runbook, _ := strings.Cut(string(readme), "### Alerts")
	for _, a := range alerts {
		if !strings.Contains(runbook, "`"+a+"`") {
			t.Errorf("README's Alerts section does not say what to do when %s fires", a)
		}
	}
	for _, want := range []string{
		"NotifydQueueBacklogRising", "NotifydOldestPendingOverAnHour", "NotifydAPIErrorRatioHigh",
		"NotifydDeliveryErrorRatioHigh", "NotifydRedriveFindingWork", "NotifydOutboxRelayLagging",
		"NotifydReceiverDisabled",
	} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s in %s", want, alertsFile)
		}
	}
}

// TestREADMEListsEveryMetric: README's "Operating it" names every metric
// notifyd exports, so an operator finds each one's meaning there.
func TestREADMEListsEveryMetric(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	start := strings.Index(readme, "### Metrics")
	end := strings.Index(readme, "### Alerts")
	if start < 0 || end < start {
		t.Fatal(`README has no "### Metrics" section followed by "### Alerts"`)
	}
	section := readme[start:end]
	for name := range exported(t) {
		if !strings.Contains(section, "`"+name+"`") && !strings.Contains(section, "`"+name+"{") {
			t.Errorf("README's Metrics section does not name %s", name)
		}
	}
}
