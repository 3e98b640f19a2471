package query

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/notifyd/notifyd/internal/ingest"
)

// maxBodyDepth bounds how deeply a request body may nest arrays and objects:
// the deepest payload ingest accepts plus the object around it, so the HTTP
// endpoint and the Go client accept the same payloads. encoding/json would
// otherwise recurse 10 000 levels deep into whatever a client sends.
const maxBodyDepth = ingest.DefaultMaxDepth + 1

var (
	errBodyTooDeep = apiError(http.StatusBadRequest, "invalid_json",
		fmt.Sprintf("the body nests arrays and objects deeper than %d levels", maxBodyDepth))
	errBodyTooLarge = apiError(http.StatusRequestEntityTooLarge, "too_large", "the body is larger than the limit")
)

// limitBody wraps a request body for decodeJSON. It refuses the body as soon
// as its nesting passes maxBodyDepth, before the decoder recurses into those
// levels, and it turns the body-size middleware's error (which a chunked
// body only hits while being read, i.e. inside the decoder) into the same
// 413 answer a too-large Content-Length gets, instead of a 400.
func limitBody(r io.Reader) io.Reader { return &limitedBody{r: r} }

type limitedBody struct {
	r     io.Reader
	depth ingest.DepthScanner
	err   error
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.r.Read(p)
	if b.depth.Write(p[:n]) > maxBodyDepth {
		b.err = errBodyTooDeep
		return 0, b.err
	}
	var he *echo.HTTPError
	if errors.As(err, &he) && he.Code == http.StatusRequestEntityTooLarge {
		b.err = errBodyTooLarge
		return 0, b.err
	}
	return n, err
}
