package config

import "testing"

func TestRedisOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url          string
		wantProtocol int
		wantDB       int
		wantErr      bool
	}{
		{url: "redis://127.0.0.1:6379/0", wantProtocol: 2},
		{url: "redis://127.0.0.1:6379/3?protocol=3", wantProtocol: 3, wantDB: 3},
		{url: "redis://127.0.0.1:6379/1?protocol=2", wantProtocol: 2, wantDB: 1},
		{url: "http://127.0.0.1:6379", wantErr: true},
	}
	for _, tt := range tests {
		opt, err := RedisOptions(tt.url)
		if tt.wantErr {
			if err == nil {
				t.Errorf("%s: want an error", tt.url)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.url, err)
		}
		if opt.Protocol != tt.wantProtocol || opt.DB != tt.wantDB {
			t.Errorf("%s: protocol %d db %d, want %d and %d", tt.url, opt.Protocol, opt.DB, tt.wantProtocol, tt.wantDB)
		}
	}
}
