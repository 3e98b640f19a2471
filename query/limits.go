package query

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/labstack/echo/v4"

	"github.com/notifyd/notifyd/internal/ingest"
)

// maxBodyDepth bounds how deeply a request body may nest arrays and objects:
// the deepest payload ingest accepts plus the object around it, so the HTTP
// endpoint and the Go client accept the same payloads. encoding/json would
// otherwise recurse 10 000 levels deep into whatever a client sends.
const maxBodyDepth = ingest.DefaultMaxDepth + 1

// envelopeRoom is what a body may hold besides the payload.
const envelopeRoom = 16 << 10

// errBodyTooDeep refuses a body nested past maxBodyDepth; decodeJSON turns
// it into the payload's own refusal on the ingest route.
var errBodyTooDeep = apiError(http.StatusBadRequest, "invalid_json",
	fmt.Sprintf("the body nests arrays and objects deeper than %d levels", maxBodyDepth))

// bodyLimit refuses bodies over limit bytes (the payload limit plus
// envelopeRoom) with a 413 that says how large the body was and what the
// limit is: a Content-Length over it before anything is read, a chunked
// body once it passes the limit (decodeJSON sees http.MaxBytesError).
// Echo's own BodyLimit answers only "Request Entity Too Large".
//
// The batch ingest route has its own, larger limit (batchLimit).
func bodyLimit(limit, batchLimit int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			limit := limit
			if isIngestBatch(c) {
				limit = batchLimit
			}
			req := c.Request()
			if req.ContentLength > limit {
				return bodyTooLarge(c, req.ContentLength, limit)
			}
			if req.Body != nil {
				req.Body = http.MaxBytesReader(c.Response(), req.Body, limit)
			}
			return next(c)
		}
	}
}

// bodyTooLarge is the 413 for a body of size bytes (-1: unknown, chunked)
// over limit. On the ingest route it names the payload, the only part of a
// notification that can be large, with the payload limit.
func bodyTooLarge(c echo.Context, size, limit int64) *APIError {
	got := "more than " + strconv.FormatInt(limit, 10)
	if size >= 0 {
		got = strconv.FormatInt(size, 10)
	}
	e := apiError(http.StatusRequestEntityTooLarge, "too_large",
		fmt.Sprintf("the body is %s bytes, larger than the limit of %d bytes", got, limit))
	switch {
	case isIngest(c):
		e.Field = "payload"
		e.Message += fmt.Sprintf(" (a payload of at most %d bytes, NOTIFYD_MAX_PAYLOAD_BYTES, and %d bytes for the other fields)",
			limit-envelopeRoom, envelopeRoom)
	case isIngestBatch(c):
		e.Field = "notifications"
		e.Message += "; send the notifications in several requests"
	}
	return e
}

// isIngest: the request is POST /v1/notifications.
func isIngest(c echo.Context) bool {
	return c.Request().Method == http.MethodPost && c.Path() == "/v1/notifications"
}

// isIngestBatch: the request is POST /v1/notifications/batch.
func isIngestBatch(c echo.Context) bool {
	return c.Request().Method == http.MethodPost && c.Path() == "/v1"+ingestBatchRoute
}

// limitBody wraps a request body for decodeJSON. It refuses the body as soon
// as its nesting passes max (0: no bound), before the decoder recurses into
// those levels.
func limitBody(r io.Reader, max int) *limitedBody { return &limitedBody{r: r, max: max} }

type limitedBody struct {
	r     io.Reader
	max   int
	depth ingest.DepthScanner
	err   error
	// start is the body's first non-blank byte once read: '{' for an
	// object, whose fields are what nests.
	start byte
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.r.Read(p)
	if b.start == 0 {
		if t := bytes.TrimLeft(p[:n], " \t\r\n"); len(t) > 0 {
			b.start = t[0]
		}
	}
	if b.max > 0 && b.depth.Write(p[:n]) > b.max {
		b.err = errBodyTooDeep
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
