package fleet

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Roll is a deterministic pseudo-random number for (seed, salt, id,
// attempt): a receiver answering by it gives a resent attempt the same
// answer as the original, whatever the arrival order.
func Roll(seed uint32, salt, id string, attempt int) uint32 {
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

// Behaviour is how receiver number idx answers attempt of notification id:
// after delay, with HTTP status code (a 3xx carries a Location).
type Behaviour func(idx int, id string, attempt int) (delay time.Duration, code int)

// Request is one delivery request a receiver got.
type Request struct {
	Receiver int
	ID       string // webhook-id
	Attempt  int    // Notifyd-Attempt (0 if absent)
	Start    time.Time
	End      time.Time // zero while in flight
	Code     int       // what the receiver answered (0 if the sender went away first)
	Aborted  bool      // the sender closed the connection before the answer
	SigErr   string    // why the signature did not verify ("" if it did, or if not checked)
}

// InFlightUntil is when the request stopped occupying its sender's slot, as
// far as the receiver can tell: its end, or, for a request the sender gave
// up on (Aborted), no later than Start+timeout, the sender's delivery
// timeout. A receiver learns of a closed connection only when its server
// notices, which a loaded machine can delay past the moment the sender had
// freed the slot; the sender's clock started before the receiver's, so it
// had closed the connection by Start+timeout. A request still open (End
// zero) counts as in flight for an hour.
func (r Request) InFlightUntil(timeout time.Duration) time.Time {
	switch {
	case r.End.IsZero():
		return time.Now().Add(time.Hour)
	case r.Aborted && timeout > 0 && r.End.After(r.Start.Add(timeout)):
		return r.Start.Add(timeout)
	}
	return r.End
}

// Receivers is a set of real HTTP callback endpoints on loopback that record
// every request. Each can be taken down (its port refuses connections) and
// brought back on the same port.
type Receivers struct {
	behave Behaviour
	// Verify, if set before traffic arrives, checks each request's
	// signature; its error is recorded in Request.SigErr.
	Verify func(idx int, h http.Header, body []byte) error

	active    atomic.Int64
	completed atomic.Int64
	eps       []*endpoint

	mu   sync.Mutex
	reqs []*Request
}

type endpoint struct {
	addr string
	mu   sync.Mutex
	srv  *http.Server // nil while down
}

// NewReceivers starts n receivers.
func NewReceivers(n int, behave Behaviour) (*Receivers, error) {
	rs := &Receivers{behave: behave}
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			rs.Close()
			return nil, fmt.Errorf("receiver %d: %w", i, err)
		}
		ep := &endpoint{addr: ln.Addr().String()}
		rs.eps = append(rs.eps, ep)
		rs.serve(i, ep, ln)
	}
	return rs, nil
}

func (rs *Receivers) serve(i int, ep *endpoint, ln net.Listener) {
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { rs.handle(i, w, r) }),
		ReadHeaderTimeout: 10 * time.Second,
	}
	ep.mu.Lock()
	ep.srv = srv
	ep.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// URL is receiver i's callback URL.
func (rs *Receivers) URL(i int) string { return "http://" + rs.eps[i].addr + "/hook" }

// Len is the number of receivers.
func (rs *Receivers) Len() int { return len(rs.eps) }

// Active is the number of requests in flight across all receivers.
func (rs *Receivers) Active() int64 { return rs.active.Load() }

// Completed is the number of requests answered or abandoned by the sender.
func (rs *Receivers) Completed() int64 { return rs.completed.Load() }

// Down closes receiver i: its connections drop and its port refuses new ones.
func (rs *Receivers) Down(i int) {
	ep := rs.eps[i]
	ep.mu.Lock()
	srv := ep.srv
	ep.srv = nil
	ep.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// Up brings receiver i back on its port.
func (rs *Receivers) Up(i int) error {
	ep := rs.eps[i]
	ep.mu.Lock()
	up := ep.srv != nil
	ep.mu.Unlock()
	if up {
		return nil
	}
	var ln net.Listener
	err := WaitFor("port "+ep.addr+" to be free", 5*time.Second, func() bool {
		var err error
		ln, err = net.Listen("tcp", ep.addr)
		return err == nil
	})
	if err != nil {
		return fmt.Errorf("receiver %d back up: %w", i, err)
	}
	rs.serve(i, ep, ln)
	return nil
}

// Close stops every receiver.
func (rs *Receivers) Close() {
	for i := range rs.eps {
		rs.Down(i)
	}
}

func (rs *Receivers) handle(idx int, w http.ResponseWriter, r *http.Request) {
	body, readErr := io.ReadAll(r.Body)
	id := r.Header.Get("webhook-id")
	attempt, _ := strconv.Atoi(r.Header.Get("Notifyd-Attempt"))
	req := &Request{Receiver: idx, ID: id, Attempt: attempt, Start: time.Now()}
	if rs.Verify != nil {
		err := readErr
		if err == nil {
			err = rs.Verify(idx, r.Header, body)
		}
		if err != nil {
			req.SigErr = err.Error()
		}
	}
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
		if code >= 300 && code < 400 {
			w.Header().Set("Location", "/elsewhere")
		}
		w.WriteHeader(code)
		fmt.Fprintf(w, "answer %d", code)
		rs.mu.Lock()
		req.End, req.Code = time.Now(), code
		rs.mu.Unlock()
	case <-r.Context().Done():
		rs.mu.Lock()
		req.End, req.Aborted = time.Now(), true
		rs.mu.Unlock()
	}
	rs.completed.Add(1)
}

// Snapshot copies every request so far.
func (rs *Receivers) Snapshot() []Request {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	out := make([]Request, len(rs.reqs))
	for i, r := range rs.reqs {
		out[i] = *r
	}
	return out
}

// SeenAttempts counts, per notification and attempt number, the automatic
// attempts the receivers got.
func (rs *Receivers) SeenAttempts() map[string]map[int]int {
	out := make(map[string]map[int]int)
	for _, r := range rs.Snapshot() {
		if r.Attempt <= 0 {
			continue
		}
		m := out[r.ID]
		if m == nil {
			m = make(map[int]int)
			out[r.ID] = m
		}
		m[r.Attempt]++
	}
	return out
}
