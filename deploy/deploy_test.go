// Package deploy holds the files for running notifyd outside this repository
// (Dockerfile, docker-compose.yml, redis.conf, Kubernetes manifests). Nothing
// here can be run without Docker or a cluster, so this test parses them and
// checks what would otherwise only fail at deploy time. Nothing here may
// hold a real secret: every one comes from the environment or a Secret.
package deploy

import (
	"bufio"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/notifyd/notifyd/internal/redisurl"
)

// doc is one YAML document.
type doc = map[string]any

// The settings every notifyd process is configured with.
var notifydEnv = []string{
	"NOTIFYD_DATABASE_URL",
	"NOTIFYD_REDIS_URL",
	"NOTIFYD_HTTP_ADDR",
	"NOTIFYD_ADMIN_TOKEN",
	"NOTIFYD_ALLOW_PRIVATE_TARGETS",
	"NOTIFYD_RETRY_MAX_ATTEMPTS",
	"NOTIFYD_RETRY_BASE",
	"NOTIFYD_RETRY_FACTOR",
	"NOTIFYD_RETRY_MAX_INTERVAL",
	"NOTIFYD_TASK_KEY",
}

// yamlFiles are the compose and Kubernetes files; observability/ holds
// Prometheus rules, which observability_test.go checks with promtool.
func yamlFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path == "observability" {
			return filepath.SkipDir
		}
		if ext := filepath.Ext(path); !d.IsDir() && (ext == ".yaml" || ext == ".yml") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no YAML files under deploy/")
	}
	return files
}

// decodeAll returns every non-empty document in a (multi-document) YAML file.
func decodeAll(t *testing.T, path string) []doc {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var docs []doc
	for i := 0; ; i++ {
		var d doc
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", path, i, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
}

// get walks nested maps: get(d, "spec", "template", "spec").
func get(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(doc)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func str(v any, keys ...string) string {
	s, _ := get(v, keys...).(string)
	return s
}

func list(v any, keys ...string) []any {
	l, _ := get(v, keys...).([]any)
	return l
}

func isCompose(path string) bool {
	base := filepath.Base(path)
	return strings.HasPrefix(base, "docker-compose") || strings.HasPrefix(base, "compose")
}

// k8sObjects returns every document under kubernetes/, by file.
func k8sObjects(t *testing.T) map[string][]doc {
	t.Helper()
	objs := map[string][]doc{}
	for _, path := range yamlFiles(t) {
		if strings.HasPrefix(filepath.ToSlash(path), "kubernetes/") {
			objs[path] = decodeAll(t, path)
		}
	}
	if len(objs) == 0 {
		t.Fatal("no files under deploy/kubernetes/")
	}
	return objs
}

func byKind(t *testing.T, kind string) map[string]doc {
	t.Helper()
	out := map[string]doc{}
	for _, docs := range k8sObjects(t) {
		for _, d := range docs {
			if str(d, "kind") == kind {
				out[str(d, "metadata", "name")] = d
			}
		}
	}
	return out
}

func TestYAMLParses(t *testing.T) {
	for _, path := range yamlFiles(t) {
		t.Run(path, func(t *testing.T) {
			docs := decodeAll(t, path)
			if len(docs) == 0 {
				t.Fatal("no documents")
			}
			for i, d := range docs {
				switch {
				case isCompose(path):
					if _, ok := get(d, "services").(doc); !ok {
						t.Errorf("document %d: no services mapping", i)
					}
				default:
					if str(d, "apiVersion") == "" || str(d, "kind") == "" {
						t.Errorf("document %d: apiVersion or kind missing", i)
					}
					if str(d, "kind") != "Kustomization" && str(d, "metadata", "name") == "" {
						t.Errorf("document %d (%s): metadata.name missing", i, str(d, "kind"))
					}
				}
			}
		})
	}
}

func TestKustomizationListsEveryManifest(t *testing.T) {
	docs := decodeAll(t, "kubernetes/kustomization.yaml")
	var listed []string
	for _, r := range list(docs[0], "resources") {
		s, _ := r.(string)
		listed = append(listed, s)
		if _, err := os.Stat(filepath.Join("kubernetes", s)); err != nil {
			t.Errorf("resource %q: %v", s, err)
		}
	}
	for path := range k8sObjects(t) {
		name := filepath.Base(path)
		if name != "kustomization.yaml" && !slices.Contains(listed, name) {
			t.Errorf("%s is not listed in kustomization.yaml resources", path)
		}
	}
	if len(list(docs[0], "images")) == 0 {
		t.Error("kustomization.yaml sets no image")
	}
}

func TestDeployments(t *testing.T) {
	deployments := byKind(t, "Deployment")
	tests := []struct {
		name        string
		minReplicas int
		minGrace    int // terminationGracePeriodSeconds
	}{
		{"notifyd-api", 2, 0},
		{"notifyd-worker", 2, 60},
		{"notifyd-scheduler", 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ok := deployments[tt.name]
			if !ok {
				t.Fatalf("no Deployment %s", tt.name)
			}
			if r, _ := get(d, "spec", "replicas").(int); r < tt.minReplicas {
				t.Errorf("replicas = %d, want >= %d", r, tt.minReplicas)
			}
			pod := get(d, "spec", "template", "spec")
			if g, _ := get(pod, "terminationGracePeriodSeconds").(int); g < tt.minGrace {
				t.Errorf("terminationGracePeriodSeconds = %d, want >= %d", g, tt.minGrace)
			}
			if get(pod, "securityContext", "runAsNonRoot") != true {
				t.Error("pod securityContext.runAsNonRoot is not true")
			}
			ann := get(d, "spec", "template", "metadata", "annotations")
			if str(ann, "prometheus.io/scrape") != "true" || str(ann, "prometheus.io/path") != "/metrics" {
				t.Errorf("prometheus annotations missing: %v", ann)
			}
			labels, _ := get(d, "spec", "template", "metadata", "labels").(doc)
			sel, _ := get(d, "spec", "selector", "matchLabels").(doc)
			if len(sel) == 0 {
				t.Error("spec.selector.matchLabels is empty")
			}
			for k, v := range sel {
				if labels[k] != v {
					t.Errorf("selector %s=%v does not match the pod labels", k, v)
				}
			}
			checkContainers(t, pod, true)
		})
	}
	// Any further Deployment gets the same container checks.
	for name, d := range deployments {
		if name != "notifyd-api" && name != "notifyd-worker" && name != "notifyd-scheduler" {
			t.Run(name, func(t *testing.T) { checkContainers(t, get(d, "spec", "template", "spec"), true) })
		}
	}
}

// checkContainers checks image, probes, resources and securityContext.
func checkContainers(t *testing.T, pod any, probes bool) {
	t.Helper()
	containers := list(pod, "containers")
	if len(containers) == 0 {
		t.Fatal("no containers")
	}
	for _, c := range containers {
		name := str(c, "name")
		if str(c, "image") == "" {
			t.Errorf("container %s: no image", name)
		}
		if probes {
			for probe, want := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"} {
				if got := str(c, probe, "httpGet", "path"); got != want {
					t.Errorf("container %s: %s.httpGet.path = %q, want %q", name, probe, got, want)
				}
				if get(c, probe, "httpGet", "port") == nil {
					t.Errorf("container %s: %s.httpGet.port missing", name, probe)
				}
			}
		}
		for _, k := range []string{"requests", "limits"} {
			if get(c, "resources", k, "memory") == nil {
				t.Errorf("container %s: resources.%s.memory missing", name, k)
			}
		}
		if get(c, "securityContext", "readOnlyRootFilesystem") != true {
			t.Errorf("container %s: securityContext.readOnlyRootFilesystem is not true", name)
		}
		if get(c, "securityContext", "allowPrivilegeEscalation") != false {
			t.Errorf("container %s: securityContext.allowPrivilegeEscalation is not false", name)
		}
		var fromConfig, fromSecret bool
		for _, e := range list(c, "envFrom") {
			fromConfig = fromConfig || str(e, "configMapRef", "name") == "notifyd-config"
			fromSecret = fromSecret || str(e, "secretRef", "name") == "notifyd-secrets"
		}
		if !fromConfig || !fromSecret {
			t.Errorf("container %s: envFrom lacks notifyd-config or notifyd-secrets", name)
		}
	}
}

func TestMigrateJob(t *testing.T) {
	job, ok := byKind(t, "Job")["notifyd-migrate"]
	if !ok {
		t.Fatal("no Job notifyd-migrate")
	}
	pod := get(job, "spec", "template", "spec")
	checkContainers(t, pod, false)
	args := list(pod, "containers")[0].(doc)["args"]
	if !slices.Equal(toStrings(args), []string{"migrate"}) {
		t.Errorf("args = %v, want [migrate]", args)
	}
	if rp := str(pod, "restartPolicy"); rp != "OnFailure" && rp != "Never" {
		t.Errorf("restartPolicy = %q", rp)
	}
}

func TestServiceAndPDBsSelectPods(t *testing.T) {
	deployments := byKind(t, "Deployment")
	podLabels := func(name string) doc {
		l, _ := get(deployments[name], "spec", "template", "metadata", "labels").(doc)
		return l
	}
	matches := func(sel, labels doc) bool {
		if len(sel) == 0 {
			return false
		}
		for k, v := range sel {
			if labels[k] != v {
				return false
			}
		}
		return true
	}
	tests := []struct {
		kind, name, deployment string
		selector               []string
	}{
		{"Service", "notifyd-api", "notifyd-api", []string{"spec", "selector"}},
		{"PodDisruptionBudget", "notifyd-worker", "notifyd-worker", []string{"spec", "selector", "matchLabels"}},
		{"PodDisruptionBudget", "notifyd-api", "notifyd-api", []string{"spec", "selector", "matchLabels"}},
	}
	for _, tt := range tests {
		t.Run(tt.kind+"/"+tt.name, func(t *testing.T) {
			obj, ok := byKind(t, tt.kind)[tt.name]
			if !ok {
				t.Fatalf("no %s %s", tt.kind, tt.name)
			}
			sel, _ := get(obj, tt.selector...).(doc)
			if !matches(sel, podLabels(tt.deployment)) {
				t.Errorf("selector %v does not select the pods of Deployment %s", sel, tt.deployment)
			}
		})
	}
}

// TestOpsPortIsScrapedAndNotPublished: metrics and probes are on the ops
// listener (NOTIFYD_OPS_ADDR), a container port of its own that Prometheus
// is pointed at and that no Service publishes; the API port serves no
// /metrics.
func TestOpsPortIsScrapedAndNotPublished(t *testing.T) {
	cm := byKind(t, "ConfigMap")["notifyd-config"]
	opsAddr := str(cm, "data", "NOTIFYD_OPS_ADDR")
	if !strings.HasPrefix(opsAddr, ":") || opsAddr == str(cm, "data", "NOTIFYD_HTTP_ADDR") {
		t.Fatalf("NOTIFYD_OPS_ADDR = %q: want a port of its own on every interface (the kubelet and Prometheus dial the pod IP)", opsAddr)
	}
	for name, d := range byKind(t, "Deployment") {
		ann := get(d, "spec", "template", "metadata", "annotations")
		for _, c := range list(get(d, "spec", "template", "spec"), "containers") {
			var ops int
			for _, p := range list(c, "ports") {
				if str(p, "name") == "ops" {
					ops, _ = get(p, "containerPort").(int)
				}
			}
			if ":"+strconv.Itoa(ops) != opsAddr {
				t.Errorf("%s: container port \"ops\" is %d, want NOTIFYD_OPS_ADDR's %s", name, ops, opsAddr)
			}
			if str(ann, "prometheus.io/port") != strconv.Itoa(ops) {
				t.Errorf("%s: prometheus.io/port %q is not the ops port %d", name, str(ann, "prometheus.io/port"), ops)
			}
			for _, probe := range []string{"readinessProbe", "livenessProbe"} {
				if got := str(c, probe, "httpGet", "port"); got != "ops" {
					t.Errorf("%s: %s on port %q, want ops", name, probe, got)
				}
			}
		}
	}
	for name, svc := range byKind(t, "Service") {
		for _, p := range list(get(svc, "spec"), "ports") {
			if str(p, "targetPort") == "ops" || str(p, "name") == "ops" {
				t.Errorf("Service %s publishes the ops port", name)
			}
		}
	}
}

func TestConfigAndSecretCarryEveryVariable(t *testing.T) {
	cm := byKind(t, "ConfigMap")["notifyd-config"]
	sec := byKind(t, "Secret")["notifyd-secrets"]
	if cm == nil || sec == nil {
		t.Fatal("ConfigMap notifyd-config or Secret notifyd-secrets missing")
	}
	data, _ := get(cm, "data").(doc)
	secret, _ := get(sec, "stringData").(doc)
	for _, v := range notifydEnv {
		_, inCM := data[v]
		_, inSecret := secret[v]
		if !inCM && !inSecret {
			t.Errorf("%s is in neither the ConfigMap nor the Secret", v)
		}
	}
	for k, v := range secret {
		if s, _ := v.(string); !strings.Contains(s, "CHANGE-ME") {
			t.Errorf("Secret %s should hold a clearly marked placeholder (CHANGE-ME), not a real-looking value", k)
		}
	}
	for k, v := range data {
		if _, ok := v.(string); !ok {
			t.Errorf("ConfigMap %s: value %v is not a string (quote it)", k, v)
		}
	}
}

func TestCompose(t *testing.T) {
	c := decodeAll(t, "docker-compose.yml")[0]
	services, _ := get(c, "services").(doc)
	for _, want := range []string{"postgres", "redis", "migrate", "api", "worker", "scheduler"} {
		if _, ok := services[want]; !ok {
			t.Errorf("service %s missing", want)
		}
	}
	volumes, _ := get(c, "volumes").(doc)
	for name, s := range services {
		// depends_on is a list of names or a map of name -> condition.
		var deps []string
		switch d := get(s, "depends_on").(type) {
		case []any:
			deps = toStrings(d)
		case doc:
			for k := range d {
				deps = append(deps, k)
			}
		}
		for _, dep := range deps {
			if _, ok := services[dep]; !ok {
				t.Errorf("service %s depends on unknown service %q", name, dep)
			}
			if dep == name {
				t.Errorf("service %s depends on itself", name)
			}
		}
		for _, v := range toStrings(get(s, "volumes")) {
			src := strings.SplitN(v, ":", 2)[0]
			if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("service %s mounts %s: %v", name, src, err)
				}
			} else if _, ok := volumes[src]; !ok {
				t.Errorf("service %s uses volume %q not declared under volumes", name, src)
			}
		}
	}
	for _, name := range []string{"migrate", "api", "worker", "scheduler"} {
		s := services[name]
		if str(s, "build", "dockerfile") != "deploy/Dockerfile" {
			t.Errorf("%s: build.dockerfile = %q, want deploy/Dockerfile", name, str(s, "build", "dockerfile"))
		}
		env, _ := get(s, "environment").(doc)
		for _, v := range notifydEnv {
			if _, ok := env[v]; !ok {
				t.Errorf("%s: environment lacks %s", name, v)
			}
		}
		if want := []string{name}; !slices.Equal(toStrings(get(s, "command")), want) {
			t.Errorf("%s: command = %v, want %v", name, get(s, "command"), want)
		}
	}
	for _, name := range []string{"api", "worker", "scheduler"} {
		hc := strings.Join(toStrings(get(services[name], "healthcheck", "test")), " ")
		if !strings.Contains(hc, "/healthz") || !strings.Contains(hc, "/readyz") {
			t.Errorf("%s: healthcheck %q does not check /healthz and /readyz", name, hc)
		}
		// The ops listener's default address: worker and scheduler serve
		// nothing else, and the API's readiness detail is only there.
		if !strings.Contains(hc, "127.0.0.1:9090/") {
			t.Errorf("%s: healthcheck %q is not on the ops listener (127.0.0.1:9090)", name, hc)
		}
	}
	if r, _ := get(services["worker"], "deploy", "replicas").(int); r != 2 {
		t.Errorf("worker deploy.replicas = %d, want 2", r)
	}
	if !strings.Contains(strings.Join(toStrings(get(services["redis"], "volumes")), " "), "redis.conf") {
		t.Error("redis does not mount redis.conf")
	}
}

func toStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func TestRedisConf(t *testing.T) {
	f, err := os.Open("redis.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	settings := map[string][]string{} // directive -> every value given
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, " ")
		settings[strings.ToLower(k)] = append(settings[strings.ToLower(k)], strings.TrimSpace(v))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ directive, want string }{
		{"appendonly", "yes"},
		{"appendfsync", "everysec"},
		{"maxmemory-policy", "noeviction"},
		{"timeout", "0"},
	}
	for _, tt := range tests {
		got := settings[tt.directive]
		if len(got) != 1 || got[0] != tt.want {
			t.Errorf("%s = %v, want exactly %q", tt.directive, got, tt.want)
		}
	}
	if p := settings["protected-mode"]; len(p) != 1 || p[0] != "yes" {
		t.Errorf("protected-mode = %v, want exactly yes", p)
	}
	if len(settings["requirepass"]) > 0 || len(settings["user"]) > 0 {
		t.Error("redis.conf is checked in: a password must come from the environment, not from it")
	}
	if s := settings["save"]; len(s) == 0 || s[0] == `""` {
		t.Errorf("save = %v: RDB snapshots should stay on", s)
	}
	if len(settings["tcp-keepalive"]) != 1 {
		t.Error("tcp-keepalive not set")
	}
}

// dockerInstructions returns the Dockerfile's instructions with line
// continuations joined and heredoc bodies dropped.
func dockerInstructions(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	heredoc := regexp.MustCompile(`<<-?["']?([A-Za-z_][A-Za-z0-9_]*)["']?`)
	var out []string
	var cur, endHeredoc string
	for _, line := range strings.Split(string(b), "\n") {
		if endHeredoc != "" {
			if strings.TrimSpace(line) == endHeredoc {
				endHeredoc = ""
			}
			continue
		}
		trimmed := strings.TrimSpace(line)
		if cur == "" && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur += strings.TrimSuffix(trimmed, `\`) + " "
			continue
		}
		cur += trimmed
		if m := heredoc.FindStringSubmatch(cur); m != nil {
			endHeredoc = m[1]
		}
		out = append(out, cur)
		cur = ""
	}
	if endHeredoc != "" {
		t.Fatalf("%s: heredoc %s not terminated", path, endHeredoc)
	}
	return out
}

func TestDockerfile(t *testing.T) {
	ins := dockerInstructions(t, "Dockerfile")
	known := regexp.MustCompile(`^(?i)(FROM|RUN|CMD|LABEL|EXPOSE|ENV|ADD|COPY|ENTRYPOINT|VOLUME|USER|WORKDIR|ARG|ONBUILD|STOPSIGNAL|HEALTHCHECK|SHELL)\s`)
	lastFrom := -1
	for i, in := range ins {
		if !known.MatchString(in + " ") {
			t.Errorf("unknown instruction: %q", in)
		}
		if strings.HasPrefix(strings.ToUpper(in), "FROM ") {
			lastFrom = i
		}
	}
	if lastFrom < 1 {
		t.Fatal("want a multi-stage build (at least two FROM)")
	}
	all := strings.Join(ins, "\n")
	for _, want := range []string{
		"./cmd/notifyd",
		"./cmd/notifyctl",
		"CGO_ENABLED=0",
		"-trimpath",
		"-X github.com/notifyd/notifyd/internal/buildinfo.Version=${VERSION}",
		"ARG VERSION=dev",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	final := ins[lastFrom:]
	nonroot := strings.Contains(final[0], "nonroot")
	for _, in := range final {
		if u, ok := strings.CutPrefix(in, "USER "); ok && !strings.HasPrefix(u, "root") && !strings.HasPrefix(u, "0") {
			nonroot = true
		}
	}
	if !nonroot {
		t.Error("final stage runs as root: want a nonroot image or a non-root USER")
	}
	for _, want := range []string{"EXPOSE 8080", `CMD ["all"]`} {
		if !slices.Contains(final, want) {
			t.Errorf("final stage lacks %q", want)
		}
	}
	if !slices.ContainsFunc(final, func(s string) bool {
		return strings.HasPrefix(s, "ENTRYPOINT ") && strings.Contains(s, "notifyd")
	}) {
		t.Error("final stage has no ENTRYPOINT running notifyd")
	}

	// The build context must still hold what go build needs.
	ignore, err := os.ReadFile("Dockerfile.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(ignore), "\n") {
		p := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(line), "/"), "/")
		for _, needed := range []string{"go.mod", "go.sum", "cmd", "internal", "migrations", "*.go", "**/*.go"} {
			if p == needed {
				t.Errorf("Dockerfile.dockerignore excludes %s, which the build needs", needed)
			}
		}
	}
}

// TestRedisRequiresPassword: every Redis server in the compose file requires
// the password from the environment (and authenticates its health check),
// and every way notifyd reaches Redis carries a password.
func TestRedisRequiresPassword(t *testing.T) {
	c := decodeAll(t, "docker-compose.yml")[0]
	services, _ := get(c, "services").(doc)
	for _, name := range []string{"redis", "redis-replica"} {
		cmd := strings.Join(toStrings(get(services[name], "command")), " ")
		if !strings.Contains(cmd, `--requirepass "$$REDIS_PASSWORD"`) || !strings.Contains(cmd, `--masterauth "$$REDIS_PASSWORD"`) {
			t.Errorf("%s: command %q does not require the password from the environment", name, cmd)
		}
		if pw := str(services[name], "environment", "REDIS_PASSWORD"); !strings.Contains(pw, "${NOTIFYD_REDIS_PASSWORD:?") {
			t.Errorf("%s: REDIS_PASSWORD = %q, want the required NOTIFYD_REDIS_PASSWORD", name, pw)
		}
		if hc := strings.Join(toStrings(get(services[name], "healthcheck", "test")), " "); !strings.Contains(hc, "REDISCLI_AUTH") {
			t.Errorf("%s: health check %q does not authenticate", name, hc)
		}
	}
	for _, name := range []string{"sentinel-1", "sentinel-2", "sentinel-3"} {
		if cmd := strings.Join(toStrings(get(services[name], "command")), " "); !strings.Contains(cmd, "sentinel auth-pass mymaster $$REDIS_PASSWORD") {
			t.Errorf("%s: command %q does not give the sentinels the master's password", name, cmd)
		}
	}
	for _, name := range []string{"migrate", "api", "worker", "scheduler"} {
		url := str(services[name], "environment", "NOTIFYD_REDIS_URL")
		if !strings.Contains(url, "redis://:${NOTIFYD_REDIS_PASSWORD:?") {
			t.Errorf("%s: NOTIFYD_REDIS_URL %q does not carry the required password", name, url)
		}
		if key := str(services[name], "environment", "NOTIFYD_TASK_KEY"); !strings.HasPrefix(key, "${NOTIFYD_TASK_KEY:?") {
			t.Errorf("%s: NOTIFYD_TASK_KEY %q is not required", name, key)
		}
	}
	sec := byKind(t, "Secret")["notifyd-secrets"]
	raw, _ := get(sec, "stringData", "NOTIFYD_REDIS_URL").(string)
	rc, err := redisurl.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if opt, err := rc.SingleNode(); err != nil || opt.Password == "" {
		t.Errorf("Kubernetes NOTIFYD_REDIS_URL %q carries no password (%v)", raw, err)
	}
}
