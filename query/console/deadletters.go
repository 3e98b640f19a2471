package console

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/notifyd/notifyd/internal/tasks"
	"github.com/notifyd/notifyd/query/client"
)

// maxShownPayload bounds how much of an archived task's payload is shown.
const maxShownPayload = 2048

type archivedTask struct {
	Queue, ID, Type, LastErr, Payload string
	LastFailedAt                      any
}

type deadLettersData struct {
	Failed    *client.Page
	Tasks     []archivedTask
	TaskError string
	Receivers []receiverOption
	Since     string
	NextURL   string
}

// deadLetters shows the failed notifications of every receiver (newest
// first, with a bulk recover) and the tasks Asynq archived: ones no worker
// could handle (malformed, unknown receiver), with why.
func (c *Console) deadLetters(w http.ResponseWriter, r *http.Request, s *session) error {
	failed, err := c.apiFor(s).List(r.Context(), client.ListParams{Status: client.StatusFailed, Limit: 50,
		Order: client.Descending, Cursor: r.URL.Query().Get("cursor")})
	if err != nil {
		return err
	}
	d := &deadLettersData{Failed: failed, Receivers: c.receiverOptions(r),
		Since: c.cfg.Now().Add(-24 * time.Hour).UTC().Format("2006-01-02T15:04")}
	if failed.NextCursor != "" {
		d.NextURL = "/console/dead-letters?cursor=" + url.QueryEscape(failed.NextCursor)
	}
	d.Tasks, d.TaskError = c.archivedTasks()
	c.render(w, http.StatusOK, "deadletters", &view{Title: "Dead letters", Session: s, Nav: "deadletters", Data: d})
	return nil
}

func (c *Console) archivedTasks() ([]archivedTask, string) {
	if c.inspect == nil {
		return nil, "no Redis configured"
	}
	known, err := c.inspect.Queues()
	if err != nil {
		return nil, "reading the queues: " + err.Error()
	}
	var out []archivedTask
	for _, q := range tasks.QueuesAmong(known) {
		infos, err := c.inspect.ListArchivedTasks(q, asynq.PageSize(50))
		if err != nil {
			continue // a queue that never held a task does not exist yet
		}
		for _, t := range infos {
			out = append(out, archivedTask{Queue: q, ID: t.ID, Type: t.Type, LastErr: t.LastErr,
				LastFailedAt: t.LastFailedAt, Payload: shownPayload(t.Payload)})
		}
	}
	return out, ""
}

// shownPayload is a task's payload as text, cut to a readable size; bytes
// that are not UTF-8 are replaced.
func shownPayload(p []byte) string {
	cut := len(p) > maxShownPayload
	if cut {
		p = p[:maxShownPayload]
	}
	s := strings.ToValidUTF8(string(p), "\uFFFD")
	if cut {
		s += "…"
	}
	return s
}

func (c *Console) deleteTask(w http.ResponseWriter, r *http.Request, s *session) error {
	q, id := r.PostFormValue("queue"), r.PostFormValue("id")
	if !tasks.IsQueue(q) || id == "" || c.inspect == nil {
		c.errorPage(w, r, s, http.StatusUnprocessableEntity, "queue and id must name an archived task")
		return nil
	}
	if err := c.inspect.DeleteTask(q, id); err != nil {
		c.errorPage(w, r, s, http.StatusNotFound, "No such archived task (already deleted?).")
		return nil
	}
	http.Redirect(w, r, "/console/dead-letters", http.StatusSeeOther)
	return nil
}

// recoverFromDeadLetters is the bulk recover of one receiver's window.
func (c *Console) recoverFromDeadLetters(w http.ResponseWriter, r *http.Request, s *session) error {
	r.SetPathValue("id", r.PostFormValue("receiver"))
	return c.recoverFailed(w, r, s)
}
