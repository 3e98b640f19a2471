package query

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"

	"github.com/jackc/pgx/v5/pgconn"
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

// errTimeout answers a request that passed its deadline or whose statement
// Postgres cancelled (statement_timeout): the cause goes to the log, not
// to the client.
var errTimeout = apiError(http.StatusServiceUnavailable, "timeout", "the request took too long; try again later or narrow it")

// deadline gives every request a context deadline (Config.RequestTimeout),
// which database and Redis calls inherit, and answers 503 when it, or
// Postgres's statement_timeout, ended the request.
//
// Event streams are exempt: they last as long as the client stays, and
// bound each of their own statements and writes instead.
func (s *Server) deadline(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if c.Path() == "/v1"+streamRoute {
			return next(c)
		}
		ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.RequestTimeout)
		defer cancel()
		c.SetRequest(c.Request().WithContext(ctx))
		err := next(c)
		if err != nil && isTimeout(ctx, err) {
			s.cfg.Logger.Warn("request timed out", "method", c.Request().Method, "path", c.Path(), "err", err)
			c.Response().Header().Set("Retry-After", "1")
			return errTimeout
		}
		return err
	}
}

// isTimeout: the deadline passed, or Postgres cancelled the statement
// (57014 query_canceled, which statement_timeout raises).
func isTimeout(ctx context.Context, err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "57014"
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded)
}

// ipExtractor decides the client IP rate limits and logs see: the
// connection's peer, or, when the peer is a trusted proxy, the nearest
// untrusted address in X-Forwarded-For. Echo's default would believe any
// client's X-Forwarded-For and so let it pick its own rate-limit bucket.
func ipExtractor(trusted []netip.Prefix) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range trusted {
		opts = append(opts, echo.TrustIPRange(&net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}
