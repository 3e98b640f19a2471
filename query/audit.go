package query

import (
	"context"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/notifyd/notifyd/internal/metrics"
	"github.com/notifyd/notifyd/internal/store"
)

// Unaudited mutating routes: notifications handed in by producers are the
// service's traffic, not changes to its configuration or to what it does
// with a notification, and they are recorded in notifications already.
// So are a pull receiver's acknowledgements: its stream's traffic, recorded
// as the notification's delivered_at.
var unaudited = []string{"/v1/notifications", "/v1" + ingestBatchRoute, "/v1/notifications/recorded",
	"/v1/notifications/:id/ack", "/v1/notifications/ack"}

const auditTargetKey = "notifyd.audit.target"

// auditWriteTimeout bounds the audit insert; the request waits for it so an
// answered request has its audit row (or an Error log line, see audit).
const auditWriteTimeout = 2 * time.Second

// setAuditTarget names the id a request acted on when the path does not
// hold it (a create returns the id it made).
func setAuditTarget(c echo.Context, id string) { c.Set(auditTargetKey, id) }

// audit records every mutating request on the authenticated routes it wraps
// (any method but GET, HEAD and OPTIONS, except ingest): an Info log line
// and an audit_events row with the principal, route, target id and status.
// It runs inside authentication, so a request is audited once its caller is
// known, whether it was then allowed or refused. The row is written before
// the request completes; when Postgres cannot take it, the event is logged
// at Error with every field and notifyd_api_audit_write_failures_total
// counts it, so nothing is lost without a trace.
func (s *Server) audit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		m := c.Request().Method
		if m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions || slices.Contains(unaudited, c.Path()) {
			return next(c)
		}
		if err := next(c); err != nil {
			// Answer now, so the status recorded is the one sent.
			c.Error(err)
		}
		s.recordAudit(c)
		return nil
	}
}

func (s *Server) recordAudit(c echo.Context) {
	kind, pid := principalOf(c).auditRef()
	e := &store.AuditEvent{PrincipalKind: kind, PrincipalID: pid, Method: c.Request().Method, Route: c.Path(),
		Status: c.Response().Status, RemoteIP: remoteIP(c), OccurredAt: time.Now()}
	if t := auditTarget(c); t != "" {
		e.TargetID = &t
	}
	attrs := []any{"principal_kind", e.PrincipalKind, "principal_id", e.PrincipalID, "method", e.Method,
		"route", e.Route, "target_id", derefString(e.TargetID), "status", e.Status, "remote_ip", e.RemoteIP}
	s.cfg.Logger.Info("audit", attrs...)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), auditWriteTimeout)
	defer cancel()
	if err := s.store.InsertAuditEvent(ctx, e); err != nil {
		metrics.AuditWriteFailures.Inc()
		s.cfg.Logger.Error("audit event not stored", append(attrs, "err", err)...)
	}
}

// auditTarget is the id set by the handler, else the most specific id in
// the path (/receivers/:id/api-keys/:key_id names the key).
func auditTarget(c echo.Context) string {
	if t, ok := c.Get(auditTargetKey).(string); ok && t != "" {
		return t
	}
	names, values := c.ParamNames(), c.ParamValues()
	for i := min(len(names), len(values)) - 1; i >= 0; i-- {
		if values[i] != "" {
			return values[i]
		}
	}
	return ""
}

// auditRef names the principal without any secret: its kind and id (the
// admin has none; a static producer token is static/<index>).
func (p *principal) auditRef() (kind, id string) {
	switch p.role {
	case roleAdmin:
		return "admin", ""
	case roleProducer:
		return "producer", p.producerID
	case roleReceiver:
		return "receiver", p.receiver.String()
	}
	return "unknown", ""
}

// remoteIP is the peer address, or the client address the configured IP
// extractor trusts: X-Forwarded-For is not read unless an extractor says so,
// since any client can write it.
func remoteIP(c echo.Context) string {
	if c.Echo().IPExtractor != nil {
		return c.RealIP()
	}
	host, _, err := net.SplitHostPort(c.Request().RemoteAddr)
	if err != nil {
		return c.Request().RemoteAddr
	}
	return host
}

func derefString(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// auditParams are the query parameters GET /v1/audit-events accepts.
var auditParams = []string{"target_id", "principal_kind", "principal_id", "since", "until", "limit", "cursor"}

// auditPage is the body of GET /v1/audit-events.
type auditPage struct {
	Data       []store.AuditEvent `json:"data"`
	NextCursor *string            `json:"next_cursor"`
	HasMore    bool               `json:"has_more"`
}

// listAuditEvents serves GET /v1/audit-events (admin): newest first, paged
// with the listings' cursor.
func (s *Server) listAuditEvents(c echo.Context) error {
	q := c.QueryParams()
	for name := range q {
		if !slices.Contains(auditParams, name) {
			return fieldError(name, "unknown parameter")
		}
	}
	f := store.AuditFilter{TargetID: q.Get("target_id"), PrincipalKind: q.Get("principal_kind"),
		PrincipalID: q.Get("principal_id"), Limit: defaultListLimit}
	var err error
	if f.Since, err = timeParam(q, "since"); err != nil {
		return err
	}
	if f.Until, err = timeParam(q, "until"); err != nil {
		return err
	}
	if q.Has("limit") {
		if f.Limit, err = strconv.Atoi(q.Get("limit")); err != nil || f.Limit < 1 || f.Limit > maxListLimit {
			return fieldError("limit", "must be an integer from 1 to "+strconv.Itoa(maxListLimit))
		}
	}
	if q.Has("cursor") {
		if f.After, err = decodeCursor(q.Get("cursor"), true); err != nil {
			return err
		}
	}
	rows, more, err := s.store.ListAuditEvents(c.Request().Context(), f)
	if err != nil {
		return err
	}
	page := auditPage{Data: rows, HasMore: more}
	if page.Data == nil {
		page.Data = []store.AuditEvent{}
	}
	if more {
		last := rows[len(rows)-1]
		cur := encodeCursor(store.Position{CreatedAt: last.OccurredAt, ID: last.ID}, true)
		page.NextCursor = &cur
	}
	return c.JSON(http.StatusOK, page)
}
