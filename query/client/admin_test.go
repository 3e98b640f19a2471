package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/cmd/notifyd/notifydtest"
	"github.com/notifyd/notifyd/internal/apitest"
	"github.com/notifyd/notifyd/query/client"
)

// TestAdminCalls runs the operator's calls against a real notifyd: a
// receiver's life (create, update, rotate, deactivate, list), its keys, and
// producer records, each answer typed.
func TestAdminCalls(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := notifydtest.Start(t)
	cb := apitest.NewCallbackServer(t, 200)
	admin := client.New(s.URL, apitest.AdminToken)
	name, url := "shop", cb.URL
	r, err := admin.CreateReceiver(ctx, client.ReceiverSettings{Name: &name, CallbackURL: &url,
		Timeout: json.RawMessage(`"5s"`), CallbackHosts: json.RawMessage(`["*.shop.example"]`)})
	if err != nil {
		t.Fatal(err)
	}
	if r.ID == "" || !strings.HasPrefix(r.APIKey, "nfy_") || !strings.HasPrefix(r.SigningSecret, "whsec_") || !r.Active ||
		r.Timeout != "5s" || len(r.CallbackHosts) != 1 {
		t.Fatalf("CreateReceiver = %+v", r)
	}
	inactive := false
	u, err := admin.UpdateReceiver(ctx, r.ID, client.ReceiverSettings{Active: &inactive, Timeout: client.Null, CallbackHosts: client.Null})
	if err != nil || u.Active || u.Timeout != "" || u.CallbackHosts != nil || u.Name != "shop" {
		t.Fatalf("UpdateReceiver = %+v, %v", u, err)
	}
	rot, err := admin.RotateSecret(ctx, r.ID, time.Hour)
	if err != nil || rot.SigningSecret == r.SigningSecret || !strings.HasPrefix(rot.SigningSecret, "whsec_") || rot.PreviousSecretExpiresAt == nil ||
		time.Until(*rot.PreviousSecretExpiresAt) > time.Hour {
		t.Fatalf("RotateSecret = %+v, %v", rot, err)
	}
	other, _ := admin.CreateReceiver(ctx, client.ReceiverSettings{Name: &name, CallbackURL: &url})
	var listed []string
	for rc, err := range admin.AllReceivers(ctx, 1) {
		if err != nil {
			t.Fatal(err)
		}
		listed = append(listed, rc.ID)
	}
	if strings.Join(listed, ",") != r.ID+","+other.ID {
		t.Errorf("AllReceivers = %v, want [%s %s]", listed, r.ID, other.ID)
	}

	k, err := admin.CreateAPIKey(ctx, r.ID, "rotation")
	if err != nil || !strings.HasPrefix(k.Key, "nfy_") || k.Name != "rotation" {
		t.Fatalf("CreateAPIKey = %+v, %v", k, err)
	}
	keys, err := admin.ListAPIKeys(ctx, r.ID)
	if err != nil || len(keys) != 2 || keys[0].Name != "default" || keys[1].Key != "" {
		t.Fatalf("ListAPIKeys = %+v, %v", keys, err)
	}
	if err := admin.RevokeAPIKey(ctx, r.ID, k.ID); err != nil {
		t.Fatal(err)
	}
	if err := admin.RevokeAPIKey(ctx, r.ID, k.ID); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("revoking twice: %v, want ErrNotFound", err)
	}

	p, err := admin.CreateProducer(ctx, client.NewProducer{Name: "billing", Receivers: []string{other.ID}})
	if err != nil || !strings.HasPrefix(p.Token, "nfp_") || p.AllReceivers || len(p.Receivers) != 1 {
		t.Fatalf("CreateProducer = %+v, %v", p, err)
	}
	all, err := admin.CreateProducer(ctx, client.NewProducer{Name: "ops", AllReceivers: true})
	if err != nil || !all.AllReceivers {
		t.Fatalf("CreateProducer(all) = %+v, %v", all, err)
	}
	ps, err := admin.ListProducers(ctx)
	if err != nil || len(ps) != 2 || ps[0].Token != "" {
		t.Fatalf("ListProducers = %+v, %v", ps, err)
	}
	if err := admin.DeleteProducer(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	// The receiver's own key may not manage receivers.
	if _, err := client.New(s.URL, other.APIKey).ListReceivers(ctx, 0, ""); !errors.Is(err, client.ErrForbidden) {
		t.Errorf("a receiver listing receivers: %v, want ErrForbidden", err)
	}
}
