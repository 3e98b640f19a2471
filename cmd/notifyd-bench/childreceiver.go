package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/notifyd/notifyd/internal/signing"
	"github.com/notifyd/notifyd/worker"
)

// receiverRecord is one request the receiver got.
type receiverRecord struct {
	id      string
	attempt int
	at      int64 // unix ns when the handler started (headers read)
}

type receiverState struct {
	mu      sync.Mutex
	records []receiverRecord
	ok      map[string]struct{} // ids answered 2xx
	total   atomic.Int64
}

// runReceiver is the fast local receiver. Routes:
//
//	POST /ok/<n>            200
//	POST /fail/<k>/<n>      500 for attempts 1..k, then 200
//	POST /hang/<n>          no answer until the client gives up
//	GET  /_stats            {"requests":…, "delivered":…} (unique ids answered 2xx)
//	GET  /_dump             one "id attempt unix_ns" line per request
//	POST /_reset            forget everything
func runReceiver(ctx context.Context, _ []string) error {
	st := &receiverState{ok: make(map[string]struct{})}
	mux := http.NewServeMux()
	record := func(r *http.Request) (string, int) {
		at := time.Now().UnixNano()
		id := r.Header.Get(signing.HeaderID)
		attempt, _ := strconv.Atoi(r.Header.Get(worker.HeaderAttempt))
		_, _ = io.Copy(io.Discard, r.Body)
		st.total.Add(1)
		st.mu.Lock()
		st.records = append(st.records, receiverRecord{id, attempt, at})
		st.mu.Unlock()
		return id, attempt
	}
	okay := func(w http.ResponseWriter, id string) {
		st.mu.Lock()
		st.ok[id] = struct{}{}
		st.mu.Unlock()
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "ok")
	}
	mux.HandleFunc("POST /ok/{n}", func(w http.ResponseWriter, r *http.Request) {
		id, _ := record(r)
		okay(w, id)
	})
	mux.HandleFunc("POST /fail/{k}/{n}", func(w http.ResponseWriter, r *http.Request) {
		id, attempt := record(r)
		k, _ := strconv.Atoi(r.PathValue("k"))
		if attempt <= k {
			http.Error(w, "failing on purpose", http.StatusInternalServerError)
			return
		}
		okay(w, id)
	})
	mux.HandleFunc("POST /hang/{n}", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		select {
		case <-r.Context().Done():
		case <-ctx.Done():
		case <-time.After(5 * time.Minute):
		}
	})
	mux.HandleFunc("GET /_stats", func(w http.ResponseWriter, r *http.Request) {
		st.mu.Lock()
		delivered := len(st.ok)
		st.mu.Unlock()
		fmt.Fprintf(w, `{"requests":%d,"delivered":%d}`, st.total.Load(), delivered)
	})
	mux.HandleFunc("GET /_dump", func(w http.ResponseWriter, r *http.Request) {
		st.mu.Lock()
		recs := append([]receiverRecord(nil), st.records...)
		st.mu.Unlock()
		bw := bufio.NewWriter(w)
		for _, rec := range recs {
			fmt.Fprintf(bw, "%s %d %d\n", rec.id, rec.attempt, rec.at)
		}
		_ = bw.Flush()
	})
	mux.HandleFunc("POST /_reset", func(w http.ResponseWriter, r *http.Request) {
		st.mu.Lock()
		st.records, st.ok = nil, make(map[string]struct{})
		st.mu.Unlock()
		st.total.Store(0)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ready(map[string]string{"url": "http://" + ln.Addr().String()})
	serveUntil(ctx, ln, mux)
	return nil
}
