package query

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/notifyd/notifyd/internal/ingest"
)

// decodeJSON reads the request body into v strictly: JSON content type,
// one object, no unknown fields. Errors name the field where possible.
func decodeJSON(c echo.Context, v any) error { return decodeJSONNested(c, v, maxBodyDepth) }

// decodeJSONNested is decodeJSON with the nesting bound depth (0: only
// encoding/json's own), for bodies whose deep parts are json.RawMessage,
// which encoding/json skips without recursing.
func decodeJSONNested(c echo.Context, v any, depth int) error {
	if ct := c.Request().Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return apiError(http.StatusUnsupportedMediaType, "unsupported_media_type", "send Content-Type: application/json")
		}
	}
	body := limitBody(c.Request().Body, depth)
	err := decodeStrict(body, v)
	var tooLarge *http.MaxBytesError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &tooLarge):
		return bodyTooLarge(c, -1, tooLarge.Limit)
	case errors.Is(err, errBodyTooDeep) && isIngest(c) && body.start == '{':
		// In a notification only the payload nests: refuse it as the
		// Go client does.
		return ingest.TooDeep(ingest.DefaultMaxDepth)
	}
	return jsonError(err)
}

// errTrailing refuses a body with more after its JSON value.
var errTrailing = apiError(http.StatusBadRequest, "invalid_json", "the body must hold exactly one JSON object")

// decodeStrict decodes the one JSON value r holds into v, refusing unknown
// fields; its errors are encoding/json's and r's, for jsonError.
func decodeStrict(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errTrailing
	}
	return nil
}

func jsonError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		return fieldError(typeErr.Field, fmt.Sprintf("must be a JSON %s", typeErr.Type.Kind()))
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return apiError(http.StatusBadRequest, "invalid_json", "the body is not valid JSON: "+err.Error())
	case errors.Is(err, io.EOF):
		return apiError(http.StatusBadRequest, "invalid_json", "the body is empty")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return fieldError(field, "is not a known field")
	}
	var fe *APIError
	if errors.As(err, &fe) {
		return fe
	}
	return apiError(http.StatusBadRequest, "invalid_json", err.Error())
}

// pathID parses the :id path parameter. A malformed id answers 404 like an
// unknown one: to a caller both simply do not exist.
func pathID(c echo.Context) (uuid.UUID, error) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		return uuid.Nil, errNotFound
	}
	return id, nil
}
