package client_test

import (
	"testing"

	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/query/client"
)

// The client's status and outcome constants mirror the store's (see
// types.go); a value changed or added on one side only fails here.
func TestConstantsMatchStore(t *testing.T) {
	t.Parallel()
	tests := []struct{ client, store string }{
		{client.StatusPending, store.StatusPending},
		{client.StatusDelivered, store.StatusDelivered},
		{client.StatusFailed, store.StatusFailed},
		{client.StatusCancelled, store.StatusCancelled},
		{client.OutcomeSuccess, store.OutcomeSuccess},
		{client.OutcomeFailure, store.OutcomeFailure},
		{client.OutcomeGone, store.OutcomeGone},
		{client.OutcomeTimeout, store.OutcomeTimeout},
		{client.OutcomeOffered, store.OutcomeOffered},
		{client.OutcomeBlocked, store.OutcomeBlocked},
		{client.ReceiverActive, store.ReceiverActive},
		{client.ReceiverFailing, store.ReceiverFailing},
		{client.ReceiverDisabled, store.ReceiverDisabled},
	}
	for _, tt := range tests {
		if tt.client != tt.store {
			t.Errorf("client has %q where the store has %q", tt.client, tt.store)
		}
	}
}
