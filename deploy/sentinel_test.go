package deploy

import (
	"bufio"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/notifyd/notifyd/internal/redisurl"
)

// sentinelMonitor reads "sentinel monitor NAME HOST PORT QUORUM" from
// sentinel.conf.
func sentinelMonitor(t *testing.T) (name, host string, quorum int) {
	t.Helper()
	f, err := os.Open("sentinel.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 6 && fields[0] == "sentinel" && fields[1] == "monitor" {
			q, err := strconv.Atoi(fields[5])
			if err != nil {
				t.Fatalf("sentinel monitor quorum %q: %v", fields[5], err)
			}
			return fields[2], fields[3], q
		}
	}
	t.Fatal("sentinel.conf has no `sentinel monitor` line")
	return "", "", 0
}

// TestComposeSentinelProfile checks the "sentinel" profile: a replica of
// redis and three sentinels on sentinel.conf, and that the
// NOTIFYD_REDIS_URL the file's header tells operators to export parses as a
// Sentinel URL naming those three sentinels and the monitored master.
func TestComposeSentinelProfile(t *testing.T) {
	c := decodeAll(t, "docker-compose.yml")[0]
	services, _ := get(c, "services").(doc)
	name, host, quorum := sentinelMonitor(t)
	if _, ok := services[host]; !ok {
		t.Errorf("sentinel.conf monitors %q, not a compose service", host)
	}
	sentinels := []string{"sentinel-1", "sentinel-2", "sentinel-3"}
	if quorum < 2 || quorum > len(sentinels) {
		t.Errorf("quorum %d: want a majority of %d sentinels", quorum, len(sentinels))
	}
	for _, s := range append([]string{"redis-replica"}, sentinels...) {
		svc, ok := services[s].(doc)
		if !ok {
			t.Errorf("service %s missing", s)
			continue
		}
		if p := toStrings(get(svc, "profiles")); len(p) != 1 || p[0] != "sentinel" {
			t.Errorf("%s: profiles %v, want [sentinel]", s, p)
		}
		cmd := strings.Join(toStrings(get(svc, "command")), " ")
		if s == "redis-replica" {
			if !strings.Contains(cmd, "--replicaof "+host+" 6379") {
				t.Errorf("redis-replica: command %q does not replicate %s", cmd, host)
			}
			continue
		}
		if !strings.Contains(cmd, "--sentinel") || !strings.Contains(strings.Join(toStrings(get(svc, "volumes")), " "), "sentinel.conf") {
			t.Errorf("%s: command %q does not run sentinel.conf in sentinel mode", s, cmd)
		}
	}
	raw, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`NOTIFYD_REDIS_URL='([^']+)'`).FindSubmatch(raw)
	if m == nil {
		t.Fatal("docker-compose.yml does not show the Sentinel NOTIFYD_REDIS_URL")
	}
	checkSentinelURL(t, string(m[1]), name, sentinels)
}

// checkSentinelURL parses url as notifyd does and checks it names master
// through the given sentinel hosts.
func checkSentinelURL(t *testing.T, url, master string, sentinelHosts []string) {
	t.Helper()
	rc, err := redisurl.Parse(url)
	if err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	opt, ok := rc.AsynqOpt().(asynq.RedisFailoverClientOpt)
	if !rc.Sentinel() || !ok {
		t.Fatalf("%s is not a Sentinel URL", url)
	}
	if opt.MasterName != master {
		t.Errorf("%s: master %q, want %q", url, opt.MasterName, master)
	}
	if len(opt.SentinelAddrs) != len(sentinelHosts) {
		t.Errorf("%s: sentinels %v, want %d", url, opt.SentinelAddrs, len(sentinelHosts))
	}
	for i, a := range opt.SentinelAddrs {
		if i < len(sentinelHosts) && !strings.HasPrefix(a, sentinelHosts[i]) {
			t.Errorf("%s: sentinel %d is %s, want %s", url, i, a, sentinelHosts[i])
		}
	}
}

// TestKubernetesSentinelOverlay checks the overlay builds on the base and
// patches the base's Secret with a Sentinel URL that parses.
func TestKubernetesSentinelOverlay(t *testing.T) {
	k := decodeAll(t, "kubernetes-sentinel/kustomization.yaml")[0]
	if r := toStrings(get(k, "resources")); len(r) != 1 || r[0] != "../kubernetes" {
		t.Errorf("resources %v, want [../kubernetes]", r)
	}
	patches := list(k, "patches")
	if len(patches) != 1 || str(patches[0], "path") != "secret-redis-url.yaml" {
		t.Fatalf("patches %v, want secret-redis-url.yaml", patches)
	}
	p := decodeAll(t, "kubernetes-sentinel/secret-redis-url.yaml")[0]
	base := byKind(t, "Secret")["notifyd-secrets"]
	if str(p, "kind") != "Secret" || base == nil || str(p, "metadata", "name") != str(base, "metadata", "name") {
		t.Fatalf("the patch does not target the base Secret notifyd-secrets")
	}
	url := str(p, "stringData", "NOTIFYD_REDIS_URL")
	if !strings.Contains(url, "CHANGE-ME") {
		t.Error("the patched NOTIFYD_REDIS_URL should carry a CHANGE-ME placeholder")
	}
	checkSentinelURL(t, url, "mymaster", []string{"redis-sentinel-0", "redis-sentinel-1", "redis-sentinel-2"})
}
