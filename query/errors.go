package query

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/notifyd/notifyd/internal/ingest"
	"github.com/notifyd/notifyd/internal/store"
)

// APIError is the body of every error answer:
//
//	{"error": {"code": "invalid_field", "message": "...", "field": "payload"}}
type APIError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }

func apiError(status int, code, msg string) *APIError {
	return &APIError{Status: status, Code: code, Message: msg}
}

func fieldError(field, msg string) *APIError {
	return &APIError{Status: http.StatusUnprocessableEntity, Code: "invalid_field", Field: field, Message: field + " " + msg}
}

var (
	errUnauthorized = apiError(http.StatusUnauthorized, "unauthorized", "missing or invalid bearer token")
	errForbidden    = apiError(http.StatusForbidden, "forbidden", "this token may not use this endpoint")
	errNotFound     = apiError(http.StatusNotFound, "not_found", "no such resource")
)

// handleError turns every error into the JSON error body.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	ae := s.apiErrorOf(c, err)
	if ae.Status == http.StatusUnauthorized {
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="notifyd"`)
	}
	if err := c.JSON(ae.Status, map[string]*APIError{"error": ae}); err != nil {
		s.cfg.Logger.Warn("write error response", "err", err)
	}
}

// apiErrorOf is the answer to err: internal errors are logged with detail
// and answered without it.
func (s *Server) apiErrorOf(c echo.Context, err error) *APIError {
	var ae *APIError
	var fe *ingest.FieldError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &fe):
		ae = fieldError(fe.Field, fe.Message)
	case errors.Is(err, store.ErrNotFound):
		ae = errNotFound
	case errors.As(err, &he):
		ae = apiError(he.Code, httpCode(he.Code), http.StatusText(he.Code))
		if m, ok := he.Message.(string); ok {
			ae.Message = m
		}
	default:
		s.cfg.Logger.Error("internal error", "method", c.Request().Method, "path", c.Path(), "err", err)
		ae = apiError(http.StatusInternalServerError, "internal", "internal error; see the server log")
	}
	return ae
}

func httpCode(status int) string {
	switch status {
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	case http.StatusUnsupportedMediaType:
		return "unsupported_media_type"
	}
	if status >= 500 {
		return "internal"
	}
	return "bad_request"
}
