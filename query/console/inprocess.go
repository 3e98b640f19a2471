package console

import (
	"bytes"
	"context"
	"io"
	"net/http"

	"github.com/notifyd/notifyd/query/client"
)

// The console reaches the API in process, through the same handler, routes
// and middleware as any client, with the session's own credential: the API
// alone decides what a session may see and do, so the console holds no
// second authorisation path.

type browserKey struct{}

// withBrowser remembers the browser's request, whose address the API's
// rate limits and audit trail then see.
func withBrowser(ctx context.Context, r *http.Request) context.Context {
	return context.WithValue(ctx, browserKey{}, r)
}

// inProcess is an http.RoundTripper that serves each request with api.
type inProcess struct{ api http.Handler }

func (t inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	in := req.Clone(req.Context())
	in.RequestURI = req.URL.RequestURI()
	in.RemoteAddr = "127.0.0.1:0"
	if b, ok := req.Context().Value(browserKey{}).(*http.Request); ok {
		in.RemoteAddr = b.RemoteAddr
		for _, h := range []string{"X-Forwarded-For", "X-Real-Ip"} {
			if v := b.Header.Values(h); len(v) > 0 {
				in.Header[h] = v
			}
		}
	}
	rec := &recorder{header: http.Header{}}
	t.api.ServeHTTP(rec, in)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return &http.Response{
		Status: http.StatusText(rec.status), StatusCode: rec.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: rec.header, Body: io.NopCloser(&rec.body), ContentLength: int64(rec.body.Len()),
		Request: req,
	}, nil
}

// recorder is the http.ResponseWriter an in-process call answers into.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}

// apiFor is the API client of one browser request, with its session's
// credential.
func (c *Console) apiFor(s *session) *client.Client {
	return client.New("http://notifyd.in-process", s.Credential, client.WithHTTPClient(c.http), client.WithUserAgent("notifyd-console"))
}
