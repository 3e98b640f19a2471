package query

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

var echoParam = regexp.MustCompile(`:([A-Za-z_][A-Za-z0-9_]*)`)

// TestOpenAPIMatchesRoutes compares the (method, path) pairs the server
// registers with those the OpenAPI document describes, both ways, so the
// document cannot fall behind the code.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi = %q, want 3.x", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths {
		for method := range item {
			switch method {
			case "get", "put", "post", "delete", "options", "head", "patch", "trace":
				documented[strings.ToUpper(method)+" "+path] = true
			}
		}
	}

	// Routes need no connections to be registered.
	srv := New(nil, nil, nil, Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	registered := map[string]bool{}
	for _, r := range srv.echo.Routes() {
		if r.Method == echo.RouteNotFound {
			continue // the /v1 group's catch-all, so its middleware runs on unknown paths
		}
		if strings.HasPrefix(r.Path, "/console") {
			continue // the web console's HTML pages (query/console), not the API
		}
		registered[r.Method+" "+echoParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	if len(registered) < 10 {
		t.Fatalf("only %d routes registered: %v", len(registered), registered)
	}
	for _, r := range sortedKeys(registered) {
		if !documented[r] {
			t.Errorf("route %s is registered but not in openapi.json", r)
		}
	}
	for _, r := range sortedKeys(documented) {
		if !registered[r] {
			t.Errorf("openapi.json documents %s, which the server does not register", r)
		}
	}
}

// TestOpenAPIServed checks the document is served without a token and that
// every $ref in it resolves.
func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	srv := New(nil, nil, nil, Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/openapi.json", nil))
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("GET /openapi.json: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	if !slices.Equal(rec.Body.Bytes(), OpenAPI) {
		t.Fatal("served document differs from the embedded one")
	}
	var doc map[string]any
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(v any)
	refs := 0
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "$ref" {
					refs++
					if !resolves(doc, s) {
						t.Errorf("$ref %s does not resolve", s)
					}
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	if refs == 0 {
		t.Fatal("no $ref found; is the document complete?")
	}
}

func resolves(doc map[string]any, ref string) bool {
	if !strings.HasPrefix(ref, "#/") {
		return false
	}
	var cur any = doc
	for _, part := range strings.Split(ref[2:], "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[part]; !ok {
			return false
		}
	}
	return true
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
