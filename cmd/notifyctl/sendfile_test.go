package main

import (
	"testing"

	"github.com/notifyd/notifyd/query/client"
)

// A refusal in the second request of a file names the notification by its
// place in the file, not in the request.
func TestRenumberNamesThePlaceInTheFile(t *testing.T) {
	tests := []struct {
		name                string
		in                  client.APIError
		inRequest, inFile   int
		wantField, wantText string
	}{
		{"field of an item", client.APIError{Field: "notifications[3].event_type", Message: "notifications[3].event_type is required"}, 3, 503,
			"notifications[503].event_type", "notifications[503].event_type is required"},
		{"the item itself", client.APIError{Field: "notifications[0]", Message: "notifications[0] must be a JSON object"}, 0, 500,
			"notifications[500]", "notifications[500] must be a JSON object"},
		{"a longer index is not rewritten", client.APIError{Field: "notifications[12]", Message: "notifications[12] x"}, 1, 501,
			"notifications[12]", "notifications[12] x"},
		{"first request unchanged", client.APIError{Field: "notifications[7].payload", Message: "notifications[7].payload too deep"}, 7, 7,
			"notifications[7].payload", "notifications[7].payload too deep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ae := tt.in
			renumber(&ae, tt.inRequest, tt.inFile)
			if ae.Field != tt.wantField || ae.Message != tt.wantText {
				t.Errorf("renumber(%d → %d) = %q, %q; want %q, %q", tt.inRequest, tt.inFile, ae.Field, ae.Message, tt.wantField, tt.wantText)
			}
		})
	}
}
