package console_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/notifyd/notifyd/cmd/notifyd/notifydtest"
	"github.com/notifyd/notifyd/internal/apitest"
	"github.com/notifyd/notifyd/internal/tasks"
	"github.com/notifyd/notifyd/internal/testenv"
)

var receiverIDOnPage = regexp.MustCompile(`id="receiver-id">([0-9a-f-]{36})<`)

// TestOperatorReceiverPages creates and edits a receiver through its forms
// (a bad field comes back named), deactivates and activates it, and
// recovers its failed notifications.
func TestOperatorReceiverPages(t *testing.T) {
	t.Parallel()
	s := notifydtest.Start(t)
	failing := apitest.NewCallbackServer(t, http.StatusInternalServerError)
	b := newBrowser(t, s)
	b.login(apitest.AdminToken)

	token := b.csrf("/console/receivers/new")
	resp, page := b.post("/console/receivers", url.Values{"csrf": {token}, "name": {"Shop <b>7</b>"}, "callback_url": {failing.URL}})
	m := receiverIDOnPage.FindStringSubmatch(page)
	if resp.StatusCode != http.StatusCreated || m == nil || !strings.Contains(page, "nfy_") || !strings.Contains(page, "whsec_") {
		t.Fatalf("create: %d\n%s", resp.StatusCode, page)
	}
	id := m[1]
	if _, page := b.get("/console/receivers"); !strings.Contains(page, "Shop &lt;b&gt;7&lt;/b&gt;") {
		t.Errorf("the receivers list does not show the new receiver (escaped):\n%s", page)
	}

	edit := func(fields url.Values) (*http.Response, string) {
		fields.Set("csrf", token)
		fields.Set("name", "Shop 7")
		fields.Set("callback_url", failing.URL)
		return b.post("/console/receivers/"+id, fields)
	}
	if resp, page := edit(url.Values{"timeout": {"5h"}}); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "timeout") {
		t.Errorf("a 5 h timeout: %d, want 422 naming the timeout\n%s", resp.StatusCode, page)
	}
	if resp, page := edit(url.Values{"retry": {"{"}}); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "retry must be") {
		t.Errorf("a retry policy that is not JSON: %d, want 422 naming retry\n%s", resp.StatusCode, page)
	}
	if resp, page := edit(url.Values{"timeout": {"2s"}, "success_body": {"success"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("edit: %d\n%s", resp.StatusCode, page)
	}
	var rcv struct {
		Timeout     string  `json:"timeout"`
		SuccessBody *string `json:"success_body"`
		Active      bool    `json:"active"`
	}
	s.Call(http.MethodGet, "/v1/receivers/"+id, apitest.AdminToken, nil, http.StatusOK, &rcv)
	if rcv.Timeout != "2s" || rcv.SuccessBody == nil || *rcv.SuccessBody != "success" {
		t.Errorf("after the edit: %+v", rcv)
	}

	for _, active := range []string{"false", "true"} {
		if resp, _ := b.post("/console/receivers/"+id+"/active", url.Values{"csrf": {token}, "active": {active}}); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("active=%s: %d", active, resp.StatusCode)
		}
		s.Call(http.MethodGet, "/v1/receivers/"+id, apitest.AdminToken, nil, http.StatusOK, &rcv)
		if want := active == "true"; rcv.Active != want {
			t.Errorf("after active=%s the receiver is active=%v", active, rcv.Active)
		}
	}

	n := send(t, s, id, "order-9", map[string]any{"amount": 9})
	s.WaitStatus(60*time.Second, "failed", n)
	since := time.Now().Add(-time.Hour).UTC().Format("2006-01-02T15:04")
	resp, page = b.post("/console/receivers/"+id+"/recover", url.Values{"csrf": {token}, "since": {since}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "1 failed notification(s)") {
		t.Fatalf("recover: %d\n%s", resp.StatusCode, page)
	}
	if resp, page := b.get("/console/receivers/" + id); resp.StatusCode != http.StatusOK || !strings.Contains(page, n) {
		t.Errorf("receiver page: %d, want its recent notification\n%s", resp.StatusCode, page)
	}
}

// TestDeadLettersArchivedTask puts a task no worker can read into the
// queue: Asynq archives it, the dead-letter page shows it with the reason
// (its payload escaped), and the delete button removes it.
func TestDeadLettersArchivedTask(t *testing.T) {
	t.Parallel()
	s := notifydtest.Start(t)
	q := asynq.NewClientFromRedisClient(s.Redis)
	info, err := q.Enqueue(asynq.NewTask(tasks.TypeDeliver, []byte(`<b>not a task</b>`)), asynq.Queue(tasks.QueueFirst))
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, s)
	b.login(apitest.AdminToken)
	var page string
	testenv.WaitFor(t, time.Minute, "the archived task", func() bool { _, page = b.get("/console/dead-letters"); return strings.Contains(page, info.ID) })
	if !strings.Contains(page, "&lt;b&gt;not a task&lt;/b&gt;") || strings.Contains(page, "<b>not a task") {
		t.Errorf("the archived task's payload is not shown escaped:\n%s", page)
	}
	if _, page := b.get("/console/overview"); !strings.Contains(page, tasks.QueueFirst) {
		t.Errorf("the overview does not show the queues:\n%s", page)
	}
	resp, _ := b.post("/console/dead-letters/tasks/delete", url.Values{"csrf": {b.csrf("/console/dead-letters")},
		"queue": {tasks.QueueFirst}, "id": {info.ID}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	if _, page := b.get("/console/dead-letters"); strings.Contains(page, info.ID) {
		t.Error("the deleted task is still listed")
	}
}
