package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/cmd/notifyd/notifydtest"
	"github.com/notifyd/notifyd/internal/apitest"
	"github.com/notifyd/notifyd/query/client"
)

func send(t *testing.T, c *client.Client, receiverID, key string, payload string) *client.Accepted {
	t.Helper()
	a, err := c.Send(context.Background(), client.NewNotification{
		ReceiverID: receiverID, EventType: "trade.paid", IdempotencyKey: key, Payload: json.RawMessage(payload),
	})
	if err != nil {
		t.Fatalf("Send %s: %v", key, err)
	}
	return a
}

// waitFor polls get until cond holds or fails the test.
func waitFor(t *testing.T, c *client.Client, id string, cond func(*client.Notification) bool) *client.Notification {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		n, err := c.Get(context.Background(), id)
		if err != nil {
			t.Fatalf("Get %s: %v", id, err)
		}
		if cond(n) {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("notification %s never reached the expected state; last %+v", id, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func status(s string) func(*client.Notification) bool {
	return func(n *client.Notification) bool { return n.Status == s }
}

func TestSendGetAndErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := notifydtest.Start(t)
	cb := apitest.NewCallbackServer(t, 200)
	r := s.CreateReceiver(cb.URL, nil)
	other := s.CreateReceiver(cb.URL, nil)
	producer := client.New(s.URL+"/", apitest.ProducerToken) // a trailing slash is fine
	recv := client.New(s.URL, r.APIKey)

	a := send(t, producer, r.ID, "order-1", `{"amount":42}`)
	if a.ID == "" || a.Status != client.StatusPending || a.Replayed {
		t.Errorf("Send = %+v", a)
	}
	again := send(t, producer, r.ID, "order-1", `{"amount":42}`)
	if again.ID != a.ID || !again.Replayed {
		t.Errorf("repeated Send = %+v, want a replay of %s", again, a.ID)
	}

	n := waitFor(t, recv, a.ID, status(client.StatusDelivered))
	if n.ReceiverID != r.ID || n.EventType != "trade.paid" || n.IdempotencyKey != "order-1" || string(n.Payload) != `{"amount":42}` ||
		n.Attempts != 1 || n.DeliveredAt == nil || n.CreatedAt.IsZero() || !n.Final() {
		t.Errorf("Get = %+v", n)
	}
	if len(n.DeliveryAttempts) != 1 || n.DeliveryAttempts[0].Attempt != 1 || n.DeliveryAttempts[0].StatusCode != 200 ||
		n.DeliveryAttempts[0].Outcome != client.OutcomeSuccess || n.DeliveryAttempts[0].Manual {
		t.Errorf("delivery attempts = %+v", n.DeliveryAttempts)
	}

	rc, err := recv.GetReceiver(ctx, r.ID)
	if err != nil || rc.ID != r.ID || rc.CallbackURL != cb.URL || !rc.Active {
		t.Errorf("GetReceiver = %+v, %v", rc, err)
	}

	tests := []struct {
		name      string
		call      func() error
		sentinel  error
		status    int
		code      string
		field     string
		temporary bool
	}{
		{"unknown id", func() error { _, err := recv.Get(ctx, "7d1c2a40-0000-4000-8000-000000000000"); return err },
			client.ErrNotFound, 404, "not_found", "", false},
		{"another receiver's notification", func() error { _, err := client.New(s.URL, other.APIKey).Get(ctx, a.ID); return err },
			client.ErrNotFound, 404, "not_found", "", false},
		{"no token", func() error { _, err := client.New(s.URL, "").Get(ctx, a.ID); return err },
			client.ErrUnauthorized, 401, "unauthorized", "", false},
		{"wrong token", func() error { _, err := client.New(s.URL, "nfy_wrong").Get(ctx, a.ID); return err },
			client.ErrUnauthorized, 401, "unauthorized", "", false},
		{"receiver may not send", func() error {
			_, err := recv.Send(ctx, client.NewNotification{ReceiverID: r.ID, EventType: "x", IdempotencyKey: "k", Payload: json.RawMessage(`{}`)})
			return err
		}, client.ErrForbidden, 403, "forbidden", "", false},
		{"idempotency key reused with another payload", func() error {
			_, err := producer.Send(ctx, client.NewNotification{ReceiverID: r.ID, EventType: "trade.paid", IdempotencyKey: "order-1", Payload: json.RawMessage(`{"amount":43}`)})
			return err
		}, client.ErrIdempotencyConflict, 409, "idempotency_conflict", "idempotency_key", false},
		{"invalid field", func() error {
			_, err := producer.Send(ctx, client.NewNotification{ReceiverID: r.ID, IdempotencyKey: "k", Payload: json.RawMessage(`{}`)})
			return err
		}, nil, 422, "invalid_field", "event_type", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var ae *client.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v (%T) is not an *APIError", err, err)
			}
			if ae.StatusCode != tt.status || ae.Code != tt.code || ae.Field != tt.field || ae.Message == "" || ae.Temporary() != tt.temporary {
				t.Errorf("APIError = %+v", ae)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.sentinel)
			}
			if errors.Is(tt.sentinel, client.ErrIdempotencyConflict) && !errors.Is(err, client.ErrConflict) {
				t.Errorf("an idempotency conflict %v does not match ErrConflict", err)
			}
			for _, s := range []error{client.ErrNotFound, client.ErrUnauthorized, client.ErrForbidden, client.ErrConflict} {
				if s != tt.sentinel && !(s == client.ErrConflict && tt.sentinel == client.ErrIdempotencyConflict) && errors.Is(err, s) {
					t.Errorf("%v also matches %v", err, s)
				}
			}
		})
	}
}

func TestListPagesInOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := notifydtest.Start(t)
	cb := apitest.NewCallbackServer(t, 200)
	r := s.CreateReceiver(cb.URL, nil)
	other := s.CreateReceiver(cb.URL, nil)
	producer := client.New(s.URL, apitest.ProducerToken)
	var ids []string
	for i := range 7 {
		ids = append(ids, send(t, producer, r.ID, fmt.Sprintf("order-%d", i), fmt.Sprintf(`{"n":%d}`, i)).ID)
	}
	send(t, producer, other.ID, "order-0", `{"n":0}`) // never visible to r
	recv := client.New(s.URL, r.APIKey)

	// Page by page, ascending.
	var got []string
	p := client.ListParams{Order: client.Ascending, Limit: 3}
	for pages := 0; ; pages++ {
		page, err := recv.List(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Data) > 3 || pages > 3 {
			t.Fatalf("page %d has %d items", pages, len(page.Data))
		}
		for _, n := range page.Data {
			got = append(got, n.ID)
		}
		if !page.HasMore {
			if page.NextCursor != "" {
				t.Errorf("last page has cursor %q", page.NextCursor)
			}
			break
		}
		p.Cursor = page.NextCursor
	}
	if strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Errorf("ascending pages = %v, want %v", got, ids)
	}

	collect := func(c *client.Client, p client.ListParams) []*client.Notification {
		t.Helper()
		var out []*client.Notification
		for n, err := range c.All(ctx, p) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, n)
		}
		return out
	}
	desc := collect(recv, client.ListParams{Order: client.Descending, Limit: 2})
	if len(desc) != 7 || desc[0].ID != ids[6] || desc[6].ID != ids[0] {
		t.Errorf("descending All = %d items, first %v", len(desc), desc)
	}
	for i := 1; i < len(desc); i++ {
		if desc[i].CreatedAt.After(desc[i-1].CreatedAt) {
			t.Errorf("descending order broken at %d", i)
		}
	}
	byKey := collect(recv, client.ListParams{IdempotencyKey: "order-3"})
	if len(byKey) != 1 || byKey[0].ID != ids[3] {
		t.Errorf("filter by key = %v", byKey)
	}
	since := collect(recv, client.ListParams{CreatedAfter: desc[2].CreatedAt, Order: client.Ascending})
	if len(since) != 3 || since[0].ID != ids[4] {
		t.Errorf("created_after (inclusive) = %d items", len(since))
	}
	before := collect(recv, client.ListParams{CreatedBefore: desc[2].CreatedAt, Order: client.Ascending})
	if len(before) != 4 || before[3].ID != ids[3] {
		t.Errorf("created_before (exclusive) = %d items", len(before))
	}
	if n := collect(recv, client.ListParams{EventType: "refund.done"}); len(n) != 0 {
		t.Errorf("event_type filter let %d through", len(n))
	}
	// The admin sees both receivers, or one with ReceiverID.
	admin := client.New(s.URL, apitest.AdminToken)
	if n := collect(admin, client.ListParams{}); len(n) != 8 {
		t.Errorf("admin sees %d, want 8", len(n))
	}
	if n := collect(admin, client.ListParams{ReceiverID: other.ID}); len(n) != 1 || n[0].ReceiverID != other.ID {
		t.Errorf("admin filtered by receiver: %v", n)
	}

	// Breaking out of All stops it.
	count := 0
	for range recv.All(ctx, client.ListParams{Limit: 1}) {
		count++
		if count == 2 {
			break
		}
	}
	if count != 2 {
		t.Errorf("break: %d", count)
	}

	// An invalid parameter is an API error naming the field.
	_, err := recv.List(ctx, client.ListParams{Status: "lost"})
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.StatusCode/100 != 4 || ae.Field != "status" {
		t.Errorf("bad status filter: %v", err)
	}
}

func TestGetByKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := notifydtest.Start(t)
	cb := apitest.NewCallbackServer(t, 200)
	r := s.CreateReceiver(cb.URL, nil)
	producer := client.New(s.URL, apitest.ProducerToken)
	// Keys are opaque to notifyd; the client must escape them in the path.
	const key = "order/2026 #1?x=y&z%"
	a := send(t, producer, r.ID, key, `{"amount":1}`)
	n, err := client.New(s.URL, r.APIKey).GetByKey(ctx, key, nil)
	if err != nil || n.ID != a.ID || n.IdempotencyKey != key {
		t.Fatalf("GetByKey = %+v, %v", n, err)
	}
	n, err = client.New(s.URL, apitest.AdminToken).GetByKey(ctx, key, &client.GetByKeyOptions{ReceiverID: r.ID})
	if err != nil || n.ID != a.ID {
		t.Fatalf("admin GetByKey = %+v, %v", n, err)
	}
	if _, err := client.New(s.URL, r.APIKey).GetByKey(ctx, "order-never", nil); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("unknown key: %v", err)
	}
}

func TestAttemptsRedeliverRecoverCancel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := notifydtest.Start(t)
	cb := apitest.NewCallbackServer(t, 500)
	r := s.CreateReceiver(cb.URL, map[string]any{"retry": map[string]any{"max_attempts": 1}})
	slow := s.CreateReceiver(cb.URL, map[string]any{"retry": map[string]any{"max_attempts": 3, "intervals": []string{"1h", "1h"}}})
	producer := client.New(s.URL, apitest.ProducerToken)
	recv := client.New(s.URL, r.APIKey)
	start := time.Now().Add(-time.Minute)

	failed := send(t, producer, r.ID, "order-1", `{"amount":1}`).ID
	waitFor(t, recv, failed, status(client.StatusFailed))
	as, err := recv.Attempts(ctx, failed)
	if err != nil || len(as) != 1 || as[0].StatusCode != 500 || as[0].Outcome != client.OutcomeFailure || as[0].Manual || as[0].Duration() < 0 {
		t.Fatalf("Attempts = %+v, %v", as, err)
	}

	// The receiver is back: a manual redelivery delivers it.
	cb.SetStatus(200)
	rd, err := recv.Redeliver(ctx, failed)
	if err != nil || rd.ID != failed || rd.Redelivery != 1 {
		t.Fatalf("Redeliver = %+v, %v", rd, err)
	}
	n := waitFor(t, recv, failed, status(client.StatusDelivered))
	last := n.DeliveryAttempts[len(n.DeliveryAttempts)-1]
	if last.Attempt != -1 || !last.Manual || last.Outcome != client.OutcomeSuccess {
		t.Errorf("manual attempt = %+v", last)
	}

	// Recover re-opens failed notifications of a range for one more attempt.
	cb.SetStatus(500)
	second := send(t, producer, r.ID, "order-2", `{"amount":2}`).ID
	waitFor(t, recv, second, status(client.StatusFailed))
	cb.SetStatus(200)
	got, err := recv.Recover(ctx, r.ID, start, time.Time{})
	if err != nil || got != 1 {
		t.Fatalf("Recover = %d, %v; want 1 (only order-2 is failed)", got, err)
	}
	waitFor(t, recv, second, status(client.StatusDelivered))
	if got, err := recv.Recover(ctx, r.ID, start, time.Now().Add(time.Minute)); err != nil || got != 0 {
		t.Errorf("second Recover = %d, %v; want 0", got, err)
	}

	// Cancel stops a pending notification (first attempt failed, next in an hour).
	cb.SetStatus(500)
	pending := send(t, producer, slow.ID, "order-3", `{"amount":3}`).ID
	slowClient := client.New(s.URL, slow.APIKey)
	waitFor(t, slowClient, pending, func(n *client.Notification) bool { return n.Attempts == 1 })
	cn, err := producer.Cancel(ctx, pending)
	if err != nil || cn.ID != pending || cn.Status != client.StatusCancelled || cn.NextAttemptAt != nil {
		t.Fatalf("Cancel = %+v, %v", cn, err)
	}
	if _, err := producer.Cancel(ctx, pending); !errors.Is(err, client.ErrConflict) {
		t.Errorf("second Cancel: %v, want ErrConflict", err)
	}
	if _, err := recv.Redeliver(ctx, pending); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("Redeliver of another receiver's notification: %v, want ErrNotFound", err)
	}
}

// The client's own handling of answers notifyd itself never gives (a
// proxy's error page, a runaway body, a broken cursor) needs a server that
// misbehaves on purpose.
func TestMisbehavingServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/proxy/v1/notifications/gateway":
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, "<html>502 Bad Gateway</html>")
		case "/proxy/v1/notifications/huge":
			fmt.Fprintf(w, `{"id":"%s"}`, strings.Repeat("x", 4096))
		case "/proxy/v1/notifications":
			if ua := r.Header.Get("User-Agent"); ua != "test-agent" {
				t.Errorf("User-Agent = %q", ua)
			}
			fmt.Fprint(w, `{"data":[{"id":"a"}],"next_cursor":null,"has_more":true}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	c := client.New(srv.URL+"/proxy", "tok", client.WithUserAgent("test-agent"), client.WithMaxResponseSize(1024),
		client.WithHTTPClient(&http.Client{Timeout: 5 * time.Second}))

	_, err := c.Get(ctx, "gateway")
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.StatusCode != 502 || ae.Code != "http_502" || ae.Message != "<html>502 Bad Gateway</html>" || !ae.Temporary() {
		t.Errorf("proxy error = %#v", err)
	}
	if _, err := c.Get(ctx, "huge"); !errors.Is(err, client.ErrTooLarge) {
		t.Errorf("oversized answer: %v", err)
	}
	var items int
	var lastErr error
	for n, err := range c.All(ctx, client.ListParams{}) {
		if err != nil {
			lastErr = err
			continue
		}
		items++
		_ = n
	}
	if items != 1 || lastErr == nil || !strings.Contains(lastErr.Error(), "next_cursor") {
		t.Errorf("All over a cursorless has_more: %d items, err %v", items, lastErr)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Get(cancelled, "x"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}
