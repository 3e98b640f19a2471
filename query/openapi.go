package query

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

// OpenAPI is the OpenAPI 3.1 document of the whole HTTP API (ops, receivers,
// ingest, query), written by hand and kept next to the routes;
// openapi_test.go fails when a registered route is missing from it or it
// documents a route that does not exist.
//
//go:embed openapi.json
var OpenAPI []byte

// openapi serves the document without authentication: it holds no secrets
// and clients generate code from it.
func (s *Server) openapi(c echo.Context) error {
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, OpenAPI)
}
