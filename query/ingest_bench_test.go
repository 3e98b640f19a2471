package query

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// BenchmarkIngestRequest is one POST /v1/notifications served in process by
// the real handler: a new notification written to a real Postgres and its
// first attempt queued in a real Redis. cpu-ns/op is this process's CPU per
// request (Postgres's and Redis's own CPU are not in it).
func BenchmarkIngestRequest(b *testing.B) {
	srv, _ := benchServer(b)

	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, benchRequest("POST", "/v1/receivers", testAdminToken,
		`{"name":"shop","callback_url":"http://127.0.0.1:1/cb"}`))
	var r struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil || rec.Code != http.StatusCreated {
		b.Fatalf("create receiver: %d %s", rec.Code, rec.Body)
	}
	prefix := `{"receiver_id":"` + r.ID + `","event_type":"trade.paid","payload":` + string(benchPayload) + `,"idempotency_key":"order-`
	i := 0
	b.ReportAllocs()
	cpu0 := processCPU(b)
	for b.Loop() {
		i++
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, benchRequest("POST", "/v1/notifications", testProducerToken, prefix+strconv.Itoa(i)+`"}`))
		if rec.Code != http.StatusAccepted {
			b.Fatalf("ingest: %d %s", rec.Code, rec.Body)
		}
	}
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
}
