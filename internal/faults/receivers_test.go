package faults

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// seed makes every "random" receiver answer reproducible: the answer to a
// request depends only on (seed, notification id, attempt number), never on
// arrival order, so a resent attempt gets the same answer as the original.
const seed = 0x5eed2026

// roll is a deterministic pseudo-random number for (salt, id, attempt).
func roll(salt, id string, attempt int) uint32 {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint32(b[:4], seed)
	binary.LittleEndian.PutUint32(b[4:], uint32(attempt))
	h.Write(b[:])
	h.Write([]byte(salt))
	h.Write([]byte(id))
	// FNV's low bits are a plain parity of the input's low bits (attempt 1
	// and 2 would always disagree); a murmur3 finaliser mixes every input bit
	// into every output bit.
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return uint32(x >> 32)
}

// behaviour is how receiver number idx answers attempt of notification id:
// after delay, with HTTP status code.
type behaviour func(idx int, id string, attempt int) (delay time.Duration, code int)

// request is one delivery request a receiver got.
type request struct {
	receiver int
	id       string
	attempt  int
	start    time.Time
	end      time.Time // zero while in flight
	code     int       // what the receiver answered (0 if the sender went away first)
	aborted  bool      // the sender closed the connection before the answer
}

// receivers is a set of real HTTP callback endpoints on loopback that record
// every request.
type receivers struct {
	behave    behaviour
	servers   []*httptest.Server
	active    atomic.Int64
	completed atomic.Int64

	mu   sync.Mutex
	reqs []*request
}

func newReceivers(t *testing.T, n int, behave behaviour) *receivers {
	rs := &receivers{behave: behave}
	for i := range n {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rs.serve(i, w, r)
		}))
		// Keep-alive connections are reused by the worker; allow many.
		srv.Config.ReadHeaderTimeout = 10 * time.Second
		srv.Start()
		rs.servers = append(rs.servers, srv)
	}
	t.Cleanup(func() {
		for _, s := range rs.servers {
			s.CloseClientConnections()
			s.Close()
		}
	})
	return rs
}

func (rs *receivers) url(i int) string { return rs.servers[i].URL + "/hook" }

func (rs *receivers) serve(idx int, w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	id := r.Header.Get("webhook-id")
	attempt, _ := strconv.Atoi(r.Header.Get("Notifyd-Attempt"))
	req := &request{receiver: idx, id: id, attempt: attempt, start: time.Now()}
	rs.mu.Lock()
	rs.reqs = append(rs.reqs, req)
	rs.mu.Unlock()
	rs.active.Add(1)
	defer rs.active.Add(-1)

	delay, code := rs.behave(idx, id, attempt)
	timer := time.NewTimer(delay)
	defer timer.Stop()
	select {
	case <-timer.C:
		w.WriteHeader(code)
		fmt.Fprintf(w, "answer %d", code)
		rs.mu.Lock()
		req.end, req.code = time.Now(), code
		rs.mu.Unlock()
	case <-r.Context().Done():
		rs.mu.Lock()
		req.end, req.aborted = time.Now(), true
		rs.mu.Unlock()
	}
	rs.completed.Add(1)
}

// snapshot copies every request so far.
func (rs *receivers) snapshot() []request {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	out := make([]request, len(rs.reqs))
	for i, r := range rs.reqs {
		out[i] = *r
	}
	return out
}

// seenAttempts counts, per notification and attempt number, the automatic
// attempts the receivers got.
func (rs *receivers) seenAttempts() map[string]map[int]int {
	out := make(map[string]map[int]int)
	for _, r := range rs.snapshot() {
		if r.attempt <= 0 {
			continue
		}
		m := out[r.id]
		if m == nil {
			m = make(map[int]int)
			out[r.id] = m
		}
		m[r.attempt]++
	}
	return out
}

// waitFor polls cond every 20 ms until it holds or timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
