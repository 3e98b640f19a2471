package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/cmd/notifyd/notifydtest"
	"github.com/notifyd/notifyd/internal/apitest"
	"github.com/notifyd/notifyd/query/client"
)

// ctl runs notifyctl in-process.
func ctl(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	shortSecret := filepath.Join(dir, "short-secret")
	if err := os.WriteFile(shortSecret, []byte("whsec_c2hvcnRzZWNyZXQ=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		wantOut  string
		wantErr  string
		noServer bool
	}{
		{"no command", nil, 2, "", "Usage: notifyctl", true},
		{"help", []string{"help"}, 0, "Operators (the admin token):", "", true},
		{"-h", []string{"-h"}, 0, "Operators (the admin token):", "", true},
		{"version", []string{"version"}, 0, "notifyctl ", "", true},
		{"--version", []string{"--version"}, 0, "notifyctl ", "", true},
		{"bad output format", []string{"-o", "yaml", "list"}, 2, "", "invalid value \"yaml\" for flag -o: must be json or table", true},
		{"bad output format after command", []string{"list", "-o", "yaml"}, 2, "", "must be json or table", true},
		{"unknown command flag", []string{"get", "--frob", "x"}, 2, "", "flag provided but not defined: -frob", true},
		{"unknown command", []string{"frobnicate"}, 2, "", `unknown command "frobnicate"`, true},
		{"unknown global flag", []string{"--frob", "list"}, 2, "", "flag provided but not defined", true},
		{"get without id", []string{"get"}, 2, "", "want one notification id", true},
		{"get with two ids", []string{"get", "a", "b"}, 2, "", "want one notification id", true},
		{"attempts without id", []string{"attempts"}, 2, "", "want one notification id, or --key", true},
		{"redeliver with id and key", []string{"redeliver", "a", "--key", "k"}, 2, "", "want one notification id, or --key", true},
		{"command help", []string{"get", "-h"}, 0, "usage: notifyctl get", "", true},
		{"receivers without subcommand", []string{"receivers"}, 2, "", "notifyctl receivers: want a subcommand", true},
		{"receivers help", []string{"receivers", "-h"}, 0, "notifyctl receivers rotate-secret <receiver-id> [--grace D]", "", true},
		{"receivers unknown subcommand", []string{"receivers", "delete", "x"}, 2, "", `unknown subcommand "delete"`, true},
		{"receivers create help", []string{"receivers", "create", "-h"}, 0, "-callback-url URL", "", true},
		{"receivers create without url", []string{"receivers", "create", "--name", "shop"}, 2, "", "--name and --callback-url are required", true},
		{"receivers create bad timeout", []string{"receivers", "create", "--name", "s", "--callback-url", "http://x", "--delivery-timeout", "5"}, 2, "", `--delivery-timeout: "5" is not a duration`, true},
		{"receivers create bad retry", []string{"receivers", "create", "--name", "s", "--callback-url", "http://x", "--retry", "{max: 1}"}, 2, "", "--retry is not valid JSON", true},
		{"receivers get without id", []string{"receivers", "get"}, 2, "", "want exactly one receiver id", true},
		{"receivers update nothing", []string{"receivers", "update", "r"}, 2, "", "nothing to change", true},
		{"receivers update contradiction", []string{"receivers", "update", "r", "--delivery-timeout", "5s", "--reset", "delivery-timeout"}, 2, "", "--delivery-timeout and --reset delivery-timeout contradict", true},
		{"receivers update bad reset", []string{"receivers", "update", "r", "--reset", "colour"}, 2, "", `"colour" is not one of delivery-timeout, success-body, retry, callback-hosts`, true},
		{"api-keys create without name", []string{"api-keys", "create", "r"}, 2, "", "--name is required", true},
		{"api-keys revoke one id", []string{"api-keys", "revoke", "r"}, 2, "", "want a receiver id and a key id", true},
		{"producers create without scope", []string{"producers", "create", "--name", "p"}, 2, "", "give either --receivers or --all-receivers", true},
		{"producers create both scopes", []string{"producers", "create", "--name", "p", "--receivers", "a", "--all-receivers"}, 2, "", "give either --receivers or --all-receivers", true},
		{"producers delete without id", []string{"producers", "delete"}, 2, "", "want exactly one producer id", true},
		{"list bad limit", []string{"list", "--limit", "0"}, 2, "", "--limit must be 1..500", true},
		{"list bad time", []string{"list", "--since", "last tuesday"}, 2, "", "not an RFC 3339 time", true},
		{"list stray argument", []string{"list", "failed"}, 2, "", `unexpected argument "failed"`, true},
		{"recover without since", []string{"recover", "--receiver", "x"}, 2, "", "--since is required", true},
		{"recover until before since", []string{"recover", "--receiver", "x", "--since", "2026-03-02", "--until", "2026-03-01"}, 2, "", "--until must be after --since", true},
		{"recover admin without receiver", []string{"recover", "--token", "admin", "--since", "1h"}, 2, "", "--receiver is required", true},
		{"send without type", []string{"send", "--receiver", "r", "--key", "k", "--payload", "{}"}, 2, "", "--type is required", true},
		{"send bad payload", []string{"send", "--receiver", "r", "--type", "t", "--key", "k", "--payload", "{amount: 1}"}, 2, "", "not valid JSON", true},
		{"send bad payload file", []string{"send", "--receiver", "r", "--type", "t", "--key", "k", "--payload", "@" + bad}, 2, "", "not valid JSON", true},
		{"send missing payload file", []string{"send", "--receiver", "r", "--type", "t", "--key", "k", "--payload", "@" + filepath.Join(dir, "none")}, 1, "", "no such file", true},
		{"reconcile without checkpoint", []string{"reconcile", "--token", "nfy_x"}, 2, "", "--checkpoint is required", true},
		{"reconcile admin without receiver", []string{"reconcile", "--token", "admin", "--checkpoint", filepath.Join(dir, "c")}, 2, "", "--receiver with an admin token", true},
		{"reconcile bad status", []string{"reconcile", "--token", "nfy_x", "--checkpoint", filepath.Join(dir, "c"), "--status", "failed,lost"}, 2, "", `"lost" is not one of`, true},
		{"reconcile bad handler url", []string{"reconcile", "--token", "nfy_x", "--checkpoint", filepath.Join(dir, "c"), "--handler-url", "localhost:9000"}, 2, "", "--handler-url must be an http(s) URL", true},
		{"reconcile handler without secret", []string{"reconcile", "--token", "nfy_x", "--checkpoint", filepath.Join(dir, "c"), "--handler-url", "http://127.0.0.1:1/n"},
			2, "", "set NOTIFYD_SIGNING_SECRET=whsec_… (the receiver's signing secret) or pass --signing-secret-file, or --unsigned", true},
		{"reconcile malformed secret", []string{"reconcile", "--token", "nfy_x", "--checkpoint", filepath.Join(dir, "c"), "--handler-url", "http://127.0.0.1:1/n",
			"--signing-secret-file", shortSecret}, 2, "", "signing secret from " + shortSecret + ": webhook: signing: invalid webhook secret: 11 bytes, need at least 24", true},
		{"reconcile missing secret file", []string{"reconcile", "--token", "nfy_x", "--checkpoint", filepath.Join(dir, "c"), "--handler-url", "http://127.0.0.1:1/n",
			"--signing-secret-file", filepath.Join(dir, "none")}, 1, "", "no such file", true},
		{"reconcile secret without handler", []string{"reconcile", "--token", "nfy_x", "--checkpoint", filepath.Join(dir, "c"), "--signing-secret-file", shortSecret},
			2, "", "--signing-secret-file is only used with --handler-url", true},
		{"receiver-schema", []string{"receiver-schema"}, 0, "CREATE TABLE IF NOT EXISTS notifyd_received (", "", true},
		{"receiver-schema named", []string{"receiver-schema", "--table", "billing.seen"}, 0, "CREATE INDEX IF NOT EXISTS seen_received_at ON billing.seen", "", true},
		{"receiver-schema bad name", []string{"receiver-schema", "--table", "x; DROP TABLE y"}, 2, "", "--table: once: table name", true},
		{"reconcile help has crontab line", []string{"reconcile", "-h"}, 0, "*/5 * * * * notifyctl reconcile --checkpoint /var/lib/merchant/notifyd.ckpt --handler-url http://127.0.0.1:9000/notifyd", "", true},
		{"unreachable API", []string{"--url", "http://127.0.0.1:1", "--token", "t", "get", "x"}, 1, "", "connection refused", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := ctl(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			if !strings.Contains(out, tt.wantOut) || !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("stdout %q (want %q)\nstderr %q (want %q)", out, tt.wantOut, errOut, tt.wantErr)
			}
			// A usage error is said once, with one pointer to the help.
			if tt.code == exitUsage && tt.wantErr != "" && (strings.Count(errOut, tt.wantErr) != 1 || strings.Count(errOut, "usage:") > 1) {
				t.Errorf("usage error not printed exactly once:\n%s", errOut)
			}
			// A command's help lists its own flags, not the global ones.
			if tt.code == exitOK && strings.HasPrefix(out, "usage: notifyctl ") && (strings.Contains(out, "  -token") || strings.Contains(out, "  -timeout")) {
				t.Errorf("command help lists the global flags:\n%s", out)
			}
		})
	}
}

func TestTokenNeverPrinted(t *testing.T) {
	t.Setenv("NOTIFYD_TOKEN", "nfy_very_secret")
	// Not base64: refused, and the refusal must not quote it.
	t.Setenv("NOTIFYD_SIGNING_SECRET", "whsec_very_secret!")
	ckpt := filepath.Join(t.TempDir(), "c")
	for _, args := range [][]string{{"list", "-h"}, {"reconcile", "-h"}, {"--url", "http://127.0.0.1:1", "get", "x"},
		{"--url", "http://127.0.0.1:1", "reconcile", "--checkpoint", ckpt, "--handler-url", "http://127.0.0.1:1/n"}} {
		_, out, errOut := ctl(t, args...)
		if strings.Contains(out+errOut, "very_secret") {
			t.Errorf("%v printed the token or the signing secret:\n%s%s", args, out, errOut)
		}
	}
}

// sendJSON sends through the CLI and returns the accepted id.
func sendJSON(t *testing.T, s *notifydtest.Stack, receiverID, key, payload string) string {
	t.Helper()
	code, out, errOut := ctl(t, "--url", s.URL, "--token", apitest.ProducerToken, "--json",
		"send", "--receiver", receiverID, "--type", "trade.paid", "--key", key, "--payload", payload)
	if code != 0 {
		t.Fatalf("send: exit %d: %s", code, errOut)
	}
	var a struct {
		ID       string `json:"id"`
		Status   string `json:"status"`
		Replayed bool   `json:"replayed"`
	}
	if err := json.Unmarshal([]byte(out), &a); err != nil || a.ID == "" || a.Status != "pending" || a.Replayed {
		t.Fatalf("send --json printed %q (%v)", out, err)
	}
	return a.ID
}

func TestCommandsAgainstServer(t *testing.T) {
	t.Parallel()
	s := notifydtest.Start(t)
	cb := apitest.NewCallbackServer(t, 200)
	r := s.CreateReceiver(cb.URL, nil)
	payloadFile := filepath.Join(t.TempDir(), "payload.json")
	if err := os.WriteFile(payloadFile, []byte(`{"amount": 7}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Many at once: a JSON array with one refused, and JSON Lines.
	manyFile, linesFile := filepath.Join(t.TempDir(), "many.json"), filepath.Join(t.TempDir(), "many.jsonl")
	many := `[{"receiver_id":"` + r.ID + `","event_type":"trade.paid","idempotency_key":"order-3","payload":{"amount":3}},
	  {"receiver_id":"` + r.ID + `","idempotency_key":"order-4","payload":{}},
	  {"receiver_id":"` + r.ID + `","event_type":"trade.paid","idempotency_key":"order-1","payload":{"amount":42}}]`
	lines := `{"receiver_id":"` + r.ID + `","event_type":"trade.paid","idempotency_key":"order-5","payload":5}` + "\n" +
		`{"receiver_id":"` + r.ID + `","event_type":"trade.paid","idempotency_key":"order-3","payload":{"amount":3}}` + "\n"
	if os.WriteFile(manyFile, []byte(many), 0o644) != nil || os.WriteFile(linesFile, []byte(lines), 0o644) != nil {
		t.Fatal("write the notification files")
	}
	id1 := sendJSON(t, s, r.ID, "order-1", `{"amount":42}`)
	id2 := sendJSON(t, s, r.ID, "order-2", "@"+payloadFile)
	s.WaitStatus(10*time.Second, client.StatusDelivered, id1, id2)

	recv := []string{"--url", s.URL, "--token", r.APIKey}
	prod := []string{"--url", s.URL, "--token", apitest.ProducerToken}
	with := func(base []string, args ...string) []string { return append(append([]string(nil), base...), args...) }
	tests := []struct {
		name string
		args []string
		code int
		// every string in out must appear on stdout, in errOut on stderr
		out, errOut []string
		// lines is the number of stdout lines (with --json: JSON values), if > 0
		lines int
	}{
		{"get", with(recv, "get", id1), 0,
			[]string{"id               " + id1, "status           delivered", "idempotency key  order-1", `payload          {"amount":42}`,
				"ATTEMPT  STARTED", "1        "}, nil, 0},
		{"get flags after id", with(recv, "get", id1, "--json"), 0, []string{`"id":"` + id1 + `"`, `"delivery_attempts":[{"attempt":1`}, nil, 1},
		{"get by key", with(recv, "get", "--key", "order-2"), 0, []string{id2, `payload          {"amount":7}`}, nil, 0},
		{"get unknown", with(recv, "get", "7d1c2a40-0000-4000-8000-000000000000"), 1, nil, []string{"not_found (HTTP 404)"}, 0},
		{"get without token", []string{"--url", s.URL, "get", id1}, 1, nil, []string{"unauthorized (HTTP 401)", "hint: pass --token"}, 0},
		{"list", with(recv, "list"), 0, []string{"ID", "STATUS", "EVENT TYPE", id1, id2, "delivered", "1/3"}, nil, 3},
		{"list json", with(recv, "--json", "list", "--order", "asc"), 0, []string{`"idempotency_key":"order-1"`}, nil, 2},
		{"list -o json", with(recv, "list", "-o", "json"), 0, []string{`"idempotency_key":"order-1"`}, nil, 2},
		{"list -o table", with(recv, "-o", "table", "list"), 0, []string{"ID", "STATUS", id1}, nil, 3},
		{"list since a date", with(recv, "list", "--since", time.Now().UTC().Format(time.DateOnly)), 0, []string{id1, id2}, nil, 3},
		{"list nothing matches", with(recv, "list", "--key", "no-such-order"), 0, []string{"no notifications match"}, nil, 1},
		{"list all, nothing matches", with(recv, "list", "--status", "failed", "--all"), 0, []string{"no notifications match"}, nil, 1},
		{"attempts by key", with(recv, "attempts", "--key", "order-1"), 0, []string{"ATTEMPT", "success", "200"}, nil, 2},
		{"attempts by unknown key", with(recv, "attempts", "--key", "no-such-order"), 1, nil, []string{"not_found (HTTP 404)"}, 0},
		{"cancel by key (admin)", []string{"--url", s.URL, "--token", apitest.AdminToken, "cancel", "--key", "order-1", "--receiver", r.ID}, 1,
			nil, []string{"(HTTP 409)"}, 0},
		{"list one page", with(recv, "list", "--limit", "1"), 0, []string{id2}, []string{"more: notifyctl list --cursor "}, 2},
		{"list all pages", with(recv, "list", "--limit", "1", "--all", "--json"), 0, []string{id1, id2}, nil, 2},
		{"list filtered", with(recv, "list", "--key", "order-2", "--json"), 0, []string{id2}, nil, 1},
		{"list bad status", with(recv, "list", "--status", "lost"), 1, nil, []string{"invalid_field (HTTP 422)"}, 0},
		{"attempts", with(recv, "attempts", id1), 0, []string{"ATTEMPT", "OUTCOME", "success", "200"}, nil, 2},
		{"attempts json", with(recv, "attempts", "--json", id1), 0, []string{`"outcome":"success"`, `"manual":false`}, nil, 1},
		{"redeliver", with(recv, "redeliver", id1), 0, []string{"queued redelivery 1 of " + id1 + " (recorded as attempt -1)"}, nil, 1},
		{"redeliver json", with(recv, "--json", "redeliver", id2), 0, []string{`"redelivery":1`}, nil, 1},
		{"cancel delivered", with(prod, "cancel", id1), 1, nil, []string{"(HTTP 409)"}, 0},
		{"receiver may not cancel", with(recv, "cancel", id1), 1, nil, []string{"forbidden (HTTP 403)", "hint:"}, 0},
		{"send replay", with(prod, "send", "--receiver", r.ID, "--type", "trade.paid", "--key", "order-1", "--payload", `{"amount":42}`), 0,
			[]string{"accepted " + id1, "already sent with this key"}, nil, 1},
		{"send conflict", with(prod, "send", "--receiver", r.ID, "--type", "trade.paid", "--key", "order-1", "--payload", `{"amount":1}`), 1,
			nil, []string{"idempotency_conflict (HTTP 409)"}, 0},
		{"send invalid field", with(prod, "send", "--receiver", "nope", "--type", "trade.paid", "--key", "k", "--payload", `{}`), 1,
			nil, []string{"invalid_field (HTTP 422): receiver_id"}, 0},
		{"send file", with(prod, "send", "--file", manyFile), 1,
			[]string{"0 accepted ", "1 refused: invalid_field: notifications[1].event_type is required",
				"2 accepted " + id1 + " (status delivered); already sent with this key"}, []string{"1 of 3 notifications refused"}, 3},
		{"send file of JSON lines", with(prod, "--json", "send", "--file", linesFile), 0,
			[]string{`"replayed":false`, `"replayed":true`}, nil, 2},
		{"send file and flags", with(prod, "send", "--file", linesFile, "--key", "k"), 2, nil, []string{"--file takes the notifications from the file"}, 0},
		{"recover with own key", with(recv, "recover", "--since", "1h"), 0, []string{"recovered 0 failed notifications of receiver " + r.ID}, nil, 1},
		{"producer may not recover", with(prod, "--json", "recover", "--receiver", r.ID, "--since", "2026-01-01T00:00:00Z"), 1, nil, []string{"(HTTP 403)"}, 0},
		{"recover admin", []string{"--url", s.URL, "--token", apitest.AdminToken, "--json", "recover", "--receiver", r.ID, "--since", "24h"}, 0,
			[]string{`{"recovered":0}`}, nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := ctl(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			for _, w := range tt.out {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tt.errOut {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if tt.lines > 0 {
				lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
				if len(lines) != tt.lines {
					t.Errorf("%d lines, want %d:\n%s", len(lines), tt.lines, out)
				}
				if strings.Contains(strings.Join(tt.args, " "), "--json") {
					for _, l := range lines {
						if !json.Valid([]byte(l)) {
							t.Errorf("not a JSON line: %s", l)
						}
					}
				}
			}
		})
	}
	// The redeliveries above went out, as manual attempts.
	for _, id := range []string{id1, id2} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			var n client.Notification
			s.Call(http.MethodGet, "/v1/notifications/"+id, apitest.AdminToken, nil, http.StatusOK, &n)
			last := n.DeliveryAttempts[len(n.DeliveryAttempts)-1]
			if last.Attempt == -1 && last.Manual && last.Outcome == client.OutcomeSuccess {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no manual attempt after redeliver: %+v", id, n.DeliveryAttempts)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// TestEveryCommandHelp: each command and subcommand answers -h on stdout
// with its own flags only (no flag of its own clashes with a global one).
func TestEveryCommandHelp(t *testing.T) {
	t.Parallel()
	var invocations [][]string
	for name := range commands {
		invocations = append(invocations, []string{name, "-h"})
	}
	for name, group := range groups {
		invocations = append(invocations, []string{name, "-h"})
		for sub := range group {
			invocations = append(invocations, []string{name, sub, "-h"})
		}
	}
	for _, args := range invocations {
		code, out, errOut := ctl(t, args...)
		if code != exitOK || errOut != "" || !strings.HasPrefix(out, "usage: notifyctl "+args[0]) {
			t.Errorf("%v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
		}
		for _, global := range []string{"  -url", "  -token", "  -json", "  -o ", "  -timeout"} {
			if strings.Contains(out, global+" ") || strings.Contains(out, global+"\n") {
				t.Errorf("%v: help lists the global flag %s:\n%s", args, strings.TrimSpace(global), out)
			}
		}
	}
}

// field is the value of a "label  value" line of notifyctl's text output.
func field(out, label string) string {
	for _, l := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(l, label+"  "); ok {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}

// TestReceiverHealthCommands: `notifyctl receiver` shows a receiver's
// health (why and since when it is disabled), `notifyctl enable` takes it
// back; both default to the API key's own receiver.
func TestReceiverHealthCommands(t *testing.T) {
	t.Parallel()
	s := notifydtest.Start(t)
	cb := apitest.NewCallbackServer(t, 200)
	r := s.CreateReceiver(cb.URL, nil)
	s.WaitStatus(10*time.Second, client.StatusDelivered, sendJSON(t, s, r.ID, "order-1", `{"amount":1}`))
	recv := []string{"--url", s.URL, "--token", r.APIKey}
	with := func(args ...string) []string { return append(append([]string(nil), recv...), args...) }

	code, out, errOut := ctl(t, with("receiver")...)
	if code != 0 || field(out, "status") != "active" || field(out, "id") != r.ID || field(out, "last success") == "" {
		t.Fatalf("receiver: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := s.Store.Pool().Exec(context.Background(), `UPDATE receivers SET status = 'disabled', disabled_at = now(),
		disabled_reason = 'every delivery attempt failed for 120h0m0s', failing_since = now() - interval '5 days' WHERE id = $1`, r.ID); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = ctl(t, with("receiver", r.ID)...)
	if code != 0 || field(out, "status") != "disabled" ||
		field(out, "disabled because") != "every delivery attempt failed for 120h0m0s" || field(out, "disabled at") == "" {
		t.Fatalf("receiver while disabled: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = ctl(t, with("--json", "enable")...)
	var got client.Receiver
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || got.Status != client.ReceiverFailing || got.DisabledAt != nil {
		t.Fatalf("enable: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ = ctl(t, with("enable", r.ID)...); code != 0 || !strings.Contains(out, "receiver "+r.ID+" is failing") {
		t.Fatalf("enable again: exit %d\n%s", code, out)
	}
	if code, _, errOut = ctl(t, with("receiver", "a", "b")...); code != exitUsage || !strings.Contains(errOut, "at most one receiver id") {
		t.Fatalf("two ids: exit %d %s", code, errOut)
	}
}
