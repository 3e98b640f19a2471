package main

import (
	"encoding/json"
	"testing"
)

func TestPageSummary(t *testing.T) {
	row := func(key string, payload string) map[string]any {
		return map[string]any{"id": "x", "idempotency_key": key, "payload": json.RawMessage(payload)}
	}
	cursor := "AWEAAAA"
	tests := []struct {
		name string
		page any
		rows int
		next string
	}{
		{"empty last page", map[string]any{"data": []any{}, "next_cursor": nil, "has_more": false}, 0, ""},
		{"awkward strings", map[string]any{"data": []any{
			row(`a"]}`, `{"s":"\\\"","t":"\\","u":["[{"]}`), row(`\`, `[[],{}]`), row(`}`, `"\\\\"`),
		}, "next_cursor": cursor, "has_more": true}, 3, cursor},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The API's field order; json.Marshal sorts map keys, so build
			// the page by hand.
			m := tc.page.(map[string]any)
			data, _ := json.Marshal(m["data"])
			next, _ := json.Marshal(m["next_cursor"])
			more, _ := json.Marshal(m["has_more"])
			body := []byte(`{"data":` + string(data) + `,"next_cursor":` + string(next) + `,"has_more":` + string(more) + "}\n")
			rows, got, err := pageSummary(body)
			if err != nil || rows != tc.rows || got != tc.next {
				t.Fatalf("%s: %d rows, next %q, %v; want %d, %q", body, rows, got, err, tc.rows, tc.next)
			}
		})
	}
	for _, bad := range []string{``, `{"data":[{"a":"}`, `{"data":[]}`, `{"data":[],"next_cursor":"x","has_more":false}`, `[]`} {
		if _, _, err := pageSummary([]byte(bad)); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}
