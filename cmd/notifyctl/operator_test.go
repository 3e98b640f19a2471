package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/notifyd/notifyd/cmd/notifyd/notifydtest"
	"github.com/notifyd/notifyd/internal/apitest"
)

// TestOperatorCommands runs an operator's work through notifyctl against a
// real notifyd: a receiver created, changed, its secret rotated, its keys
// rotated, deactivated and back; a producer record that sends, then is
// deleted.
func TestOperatorCommands(t *testing.T) {
	t.Parallel()
	s := notifydtest.Start(t)
	cb := apitest.NewCallbackServer(t, 200)
	admin := func(args ...string) []string {
		return append([]string{"--url", s.URL, "--token", apitest.AdminToken}, args...)
	}
	must := func(args []string, want ...string) string {
		t.Helper()
		code, out, errOut := ctl(t, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: stdout lacks %q:\n%s", args, w, out)
			}
		}
		return out
	}
	fails := func(args []string, want string) {
		t.Helper()
		code, out, errOut := ctl(t, args...)
		if code != exitFail || !strings.Contains(errOut, want) {
			t.Errorf("%v: exit %d, stderr %q; want 1 and %q (stdout %q)", args, code, errOut, want, out)
		}
	}

	must(admin("receivers", "list"), "no receivers yet")
	out := must(admin("receivers", "create", "--name", "shop", "--callback-url", cb.URL, "--delivery-timeout", "5s",
		"--callback-hosts", "none", "--success-body", "success"),
		"name             shop", "timeout          5s", "callback hosts   none (no override allowed)", "success body     success",
		"Shown only now", "api key         nfy_", "signing secret  whsec_")
	var r struct {
		ID, APIKey, SigningSecret string
	}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "id" {
			r.ID = f[1]
		}
	}
	out = must(admin("-o", "json", "receivers", "create", "--name", "other", "--callback-url", cb.URL, "--retry", `{"max_attempts":3}`))
	var other struct {
		ID     string          `json:"id"`
		APIKey string          `json:"api_key"`
		Retry  json.RawMessage `json:"retry"`
	}
	if err := json.Unmarshal([]byte(out), &other); err != nil || other.ID == "" || !strings.HasPrefix(other.APIKey, "nfy_") || string(other.Retry) != `{"max_attempts":3}` {
		t.Fatalf("receivers create -o json: %q (%v)", out, err)
	}
	must(admin("receivers", "list"), "ID", "NAME", "ACTIVE", r.ID, other.ID, "shop", "other")
	if out := must(admin("receivers", "list", "--json")); strings.Count(out, "\n") != 2 || strings.Contains(out, "whsec_") {
		t.Errorf("receivers list --json: want 2 lines without secrets:\n%s", out)
	}
	must(admin("receivers", "get", r.ID), "id               "+r.ID, "active           true")
	must(admin("receivers", "update", r.ID, "--name", "shop-2", "--reset", "delivery-timeout,callback-hosts"),
		"name             shop-2", "timeout          default", "callback hosts   any (overrides unrestricted)", "success body     success")
	must(admin("receivers", "rotate-secret", r.ID, "--grace", "1h"), "new signing secret of "+r.ID+" (shown only now): whsec_", "the old one keeps signing too until ")
	must(admin("receivers", "deactivate", r.ID), "active           false")
	fails([]string{"--url", s.URL, "--token", apitest.ProducerToken, "send", "--receiver", r.ID, "--type", "t", "--key", "k1", "--payload", "{}"}, "receiver_id")
	must(admin("receivers", "activate", r.ID), "active           true")
	fails(admin("receivers", "update", r.ID, "--delivery-timeout", "1m"), "invalid_field (HTTP 422)")
	fails(admin("receivers", "get", "7d1c2a40-0000-4000-8000-000000000000"), "not_found (HTTP 404)")

	// A key rotation: a second key, the first revoked.
	must(admin("api-keys", "list", other.ID), "default")
	out = must(admin("--json", "api-keys", "create", other.ID, "--name", "rotation"))
	var key struct{ ID, Key string }
	if err := json.Unmarshal([]byte(out), &key); err != nil || !strings.HasPrefix(key.Key, "nfy_") {
		t.Fatalf("api-keys create --json: %q (%v)", out, err)
	}
	must([]string{"--url", s.URL, "--token", key.Key, "list"}, "no notifications match")
	if out := must(admin("api-keys", "list", other.ID), "default", "rotation", "never"); strings.Contains(out, key.Key) {
		t.Errorf("api-keys list shows a key:\n%s", out)
	}
	must(admin("api-keys", "revoke", other.ID, key.ID), "revoked key "+key.ID)
	fails([]string{"--url", s.URL, "--token", key.Key, "list"}, "unauthorized (HTTP 401)")

	// A producer record scoped to one receiver.
	must(admin("producers", "list"), "no producer records")
	out = must(admin("producers", "create", "--name", "billing", "--receivers", r.ID), "producer \"billing\"", "may send to "+r.ID, "nfp_")
	token := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
	must([]string{"--url", s.URL, "--token", token, "send", "--receiver", r.ID, "--type", "t", "--key", "k2", "--payload", "{}"}, "accepted ")
	fails([]string{"--url", s.URL, "--token", token, "send", "--receiver", other.ID, "--type", "t", "--key", "k2", "--payload", "{}"}, "receiver_not_allowed (HTTP 403)")
	out = must(admin("--json", "producers", "list"))
	var p struct{ ID, Name string }
	if err := json.Unmarshal([]byte(out), &p); err != nil || p.Name != "billing" || strings.Contains(out, token) {
		t.Fatalf("producers list --json: %q (%v)", out, err)
	}
	must(admin("producers", "delete", p.ID), "deleted producer "+p.ID)
	fails([]string{"--url", s.URL, "--token", token, "send", "--receiver", r.ID, "--type", "t", "--key", "k3", "--payload", "{}"}, "unauthorized (HTTP 401)")

	// A receiver's key is not an operator's.
	fails([]string{"--url", s.URL, "--token", other.APIKey, "receivers", "list"}, "forbidden (HTTP 403)")
}
