package console_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// newBodyServer is a callback endpoint answering code with body.
func newBodyServer(t *testing.T, code int, body string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
