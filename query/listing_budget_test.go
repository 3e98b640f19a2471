package query

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/tasks"
)

// TestListingStopsAtByteBudget lists notifications with 100 KB payloads:
// a page ends before its payloads pass the byte budget, however many rows
// were asked for, and still gives the cursor that continues the listing; a
// single payload larger than the budget still makes a page of one. Every row
// is listed exactly once.
func TestListingStopsAtByteBudget(t *testing.T) {
	t.Parallel()
	base := newTestAPI(t)
	r := base.receiver()
	const rows, payloadSize = 10, 100_000
	blob := strings.Repeat("x", payloadSize-len(`{"b":""}`))
	for i := range rows {
		key := fmt.Sprintf("big-%02d", i)
		if _, _, err := base.store.InsertNotification(context.Background(), store.NewNotification{
			ID: tasks.NotificationID(r.ID, key), ReceiverID: r.ID, EventType: "big", IdempotencyKey: key,
			Payload: []byte(`{"b":"` + blob + `"}`), MaxAttempts: 3,
		}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name            string
		budget, perPage int
	}{
		{"three payloads fit", 350_000, 3},
		{"payload over the budget", 50_000, 1},
		{"rows end first", 4 << 20, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, base := base.serveWith(func(c *Config) { c.ListMaxBytes = tt.budget })
			seen := map[uuid.UUID]bool{}
			cursor := ""
			for page := 0; ; page++ {
				q := url.Values{"limit": {"4"}, "order": {"asc"}}
				if cursor != "" {
					q.Set("cursor", cursor)
				}
				resp, body := rawGet(t, base+"/v1/notifications?"+q.Encode(), r.APIKey, "")
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("page %d: %d %s", page, resp.StatusCode, body)
				}
				var p struct {
					Data []struct {
						ID      uuid.UUID       `json:"id"`
						Payload json.RawMessage `json:"payload"`
					} `json:"data"`
					NextCursor *string `json:"next_cursor"`
					HasMore    bool    `json:"has_more"`
				}
				if err := json.Unmarshal(body, &p); err != nil {
					t.Fatal(err)
				}
				for _, n := range p.Data {
					if seen[n.ID] {
						t.Fatalf("page %d repeats %s", page, n.ID)
					}
					seen[n.ID] = true
				}
				if left := rows - len(seen) + len(p.Data); len(p.Data) != min(tt.perPage, left) {
					t.Fatalf("page %d has %d rows, want %d", page, len(p.Data), min(tt.perPage, left))
				}
				if p.HasMore != (len(seen) < rows) || (p.NextCursor != nil) != p.HasMore {
					t.Fatalf("page %d: has_more %v, next_cursor %v with %d of %d listed", page, p.HasMore, p.NextCursor, len(seen), rows)
				}
				if !p.HasMore {
					break
				}
				cursor = *p.NextCursor
			}
			if len(seen) != rows {
				t.Errorf("listed %d of %d", len(seen), rows)
			}
		})
	}
}
