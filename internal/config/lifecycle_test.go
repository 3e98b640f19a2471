package config

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestLifecycleSettings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		want    Lifecycle
		wantErr string
	}{
		{name: "defaults", want: Lifecycle{Schedule: "@every 1m", FailingAfter: 24 * time.Hour, AutoDisableAfter: 120 * time.Hour}},
		{name: "set", env: map[string]string{"NOTIFYD_FAILING_AFTER": "2s", "NOTIFYD_AUTO_DISABLE_AFTER": "13s",
			"NOTIFYD_LIFECYCLE_SCHEDULE": "@every 1s", "NOTIFYD_OPERATOR_CALLBACK_URL": "https://ops.example.com/notifyd"},
			want: Lifecycle{Schedule: "@every 1s", FailingAfter: 2 * time.Second, AutoDisableAfter: 13 * time.Second,
				OperatorCallbackURL: "https://ops.example.com/notifyd"}},
		{name: "auto-disable off", env: map[string]string{"NOTIFYD_AUTO_DISABLE_AFTER": "0"},
			want: Lifecycle{Schedule: "@every 1m", FailingAfter: 24 * time.Hour}},
		{name: "failing not before disabled", env: map[string]string{"NOTIFYD_FAILING_AFTER": "120h"}, wantErr: "NOTIFYD_FAILING_AFTER: must be shorter"},
		{name: "negative", env: map[string]string{"NOTIFYD_AUTO_DISABLE_AFTER": "-1h"}, wantErr: "NOTIFYD_AUTO_DISABLE_AFTER: must not be negative"},
		{name: "not a duration", env: map[string]string{"NOTIFYD_FAILING_AFTER": "a day"}, wantErr: "NOTIFYD_FAILING_AFTER"},
		{name: "operator URL scheme", env: map[string]string{"NOTIFYD_OPERATOR_CALLBACK_URL": "ftp://ops.example.com"}, wantErr: "NOTIFYD_OPERATOR_CALLBACK_URL"},
		{name: "operator URL private", env: map[string]string{"NOTIFYD_OPERATOR_CALLBACK_URL": "http://10.0.0.1/ops"}, wantErr: "NOTIFYD_OPERATOR_CALLBACK_URL"},
		{name: "operator URL private allowed", env: map[string]string{"NOTIFYD_OPERATOR_CALLBACK_URL": "http://10.0.0.1/ops", "NOTIFYD_ALLOW_PRIVATE_TARGETS": "10.0.0.0/8"},
			want: Lifecycle{Schedule: "@every 1m", FailingAfter: 24 * time.Hour, AutoDisableAfter: 120 * time.Hour, OperatorCallbackURL: "http://10.0.0.1/ops"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load("notifyd scheduler", nil, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Lifecycle != tt.want {
				t.Fatalf("got %+v, want %+v", c.Lifecycle, tt.want)
			}
		})
	}
}
