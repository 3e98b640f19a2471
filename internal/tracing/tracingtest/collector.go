// Package tracingtest gives tests spans to check: a tracer provider that
// keeps them in memory, installed as OpenTelemetry's global one for the
// test (install.go), and an OTLP/HTTP endpoint on loopback that decodes
// what a real process exports (collector.go). Only test files import it.
package tracingtest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Collector receives OTLP/HTTP protobuf exports until the test ends.
type Collector struct {
	*httptest.Server
	mu      sync.Mutex
	paths   []string
	exports []*coltracepb.ExportTraceServiceRequest
}

// NewCollector starts a collector; its URL is the exporter's endpoint.
func NewCollector(t testing.TB) *Collector {
	c := &Collector{}
	c.Server = httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(c.Close)
	return c
}

func (c *Collector) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	req := &coltracepb.ExportTraceServiceRequest{}
	if err != nil || r.Header.Get("Content-Type") != "application/x-protobuf" || proto.Unmarshal(body, req) != nil {
		http.Error(w, "not an OTLP/HTTP protobuf export", http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.paths, c.exports = append(c.paths, r.URL.Path), append(c.exports, req)
	c.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

// Span is an exported span with its resource's and scope's names.
type Span struct {
	*tracepb.Span
	Resource map[string]string // string attributes of the resource
	Scope    string
}

// Attr is the span's attribute key as a string ("" when absent; integers
// in decimal).
func (s Span) Attr(key string) string { return attr(s.Attributes, key) }

// Paths are the URL paths the exports arrived at, in order.
func (c *Collector) Paths() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.paths...)
}

// Spans is every span received so far.
func (c *Collector) Spans() []Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Span
	for _, e := range c.exports {
		for _, rs := range e.ResourceSpans {
			res := map[string]string{}
			for _, kv := range rs.Resource.GetAttributes() {
				res[kv.Key] = attr(rs.Resource.Attributes, kv.Key)
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					out = append(out, Span{Span: s, Resource: res, Scope: ss.Scope.GetName()})
				}
			}
		}
	}
	return out
}

func attr(kvs []*commonpb.KeyValue, key string) string {
	for _, kv := range kvs {
		if kv.Key != key {
			continue
		}
		if v, ok := kv.Value.GetValue().(*commonpb.AnyValue_IntValue); ok {
			return strconv.FormatInt(v.IntValue, 10)
		}
		return kv.Value.GetStringValue()
	}
	return ""
}
