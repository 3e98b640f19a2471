package query

import (
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/notifyd/notifyd/internal/metrics"
)

// unmatchedRoute labels requests no route matched, so scans of random
// paths add one series, not one per path.
const unmatchedRoute = "unmatched"

// httpMetrics is the outermost middleware: it counts every answered request
// by route template, method and status class, and times it. A handler's
// error is turned into its answer here (the error handler), so the status
// counted is the one the client got.
func httpMetrics(routes map[string]bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			if err := next(c); err != nil {
				c.Error(err)
			}
			route := c.Path()
			if !routes[route] {
				route = unmatchedRoute
			}
			method := c.Request().Method
			if !knownMethod[method] {
				method = "other"
			}
			class := strconv.Itoa(c.Response().Status/100) + "xx"
			metrics.HTTPRequests.WithLabelValues(route, method, class).Inc()
			metrics.HTTPDuration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
			return nil
		}
	}
}

// knownMethod bounds the method label: anything else a client sends is
// "other".
var knownMethod = map[string]bool{
	"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "OPTIONS": true,
}

// routeTemplates are the paths routes were registered with.
func routeTemplates(e *echo.Echo) map[string]bool {
	out := map[string]bool{}
	for _, r := range e.Routes() {
		out[r.Path] = true
	}
	return out
}
