package apitest

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"testing"
)

// Try is what every caller's Do, Call and fault-time requests rest on: what
// it sends, when it decodes, and which failures it returns as errors.
func TestTry(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/echo":
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(map[string]string{
				"auth": r.Header.Get("Authorization"), "type": r.Header.Get("Content-Type"), "body": string(body),
			})
		case "/refuse":
			http.Error(w, `{"error":"no"}`, http.StatusForbidden)
		case "/garbage":
			_, _ = w.Write([]byte("not json"))
		}
	}))
	defer srv.Close()
	c := NewClient(t, srv.URL)

	tests := []struct {
		name     string
		url      string
		path     string
		token    string
		body     any
		wantCode int
		wantErr  bool
		want     map[string]string // decoded answer; nil: nothing decoded
	}{
		{name: "JSON body and token", path: "/echo", token: "tok", body: map[string]int{"a": 1}, wantCode: 201,
			want: map[string]string{"auth": "Bearer tok", "type": "application/json", "body": `{"a":1}`}},
		{name: "string body as is", path: "/echo", body: `{"raw":true}`, wantCode: 201,
			want: map[string]string{"auth": "", "type": "application/json", "body": `{"raw":true}`}},
		{name: "no body, no content type", path: "/echo", wantCode: 201,
			want: map[string]string{"auth": "", "type": "", "body": ""}},
		{name: "error answer is not decoded", path: "/refuse", wantCode: 403},
		{name: "undecodable 2xx", path: "/garbage", wantCode: 200, wantErr: true},
		{name: "no server", url: "http://127.0.0.1:1", path: "/echo", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cl := c.With(t)
			if tc.url != "" {
				cl.URL = tc.url
			}
			var got map[string]string
			code, _, err := cl.Try(http.MethodPost, tc.path, tc.token, tc.body, &got)
			if (err != nil) != tc.wantErr || code != tc.wantCode {
				t.Fatalf("Try: %d, %v; want %d, error %v", code, err, tc.wantCode, tc.wantErr)
			}
			if tc.want != nil && !maps.Equal(got, tc.want) {
				t.Fatalf("answer %v, want %v", got, tc.want)
			}
			if tc.want == nil && !tc.wantErr && got != nil {
				t.Fatalf("decoded %v from a %d", got, code)
			}
		})
	}
}
