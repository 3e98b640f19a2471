package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// LoadResult is one closed-loop load run.
type LoadResult struct {
	Conns     int     `json:"conns"`
	Seconds   float64 `json:"seconds"`
	Requests  int64   `json:"requests"`
	Errors    int64   `json:"errors"`
	FirstErr  string  `json:"first_error,omitempty"`
	PerSecond float64 `json:"req_per_s"`
	Latency   Dist    `json:"latency"`
	// RowsPerPage is the mean page size of list requests.
	RowsPerPage float64 `json:"rows_per_page,omitempty"`
}

// listState is one load goroutine's position in a listing.
type listState struct {
	receiver int
	cursor   string
	pages    int
	body     []byte // reused for every page
}

func (b *bench) listPage(api string, data *queryData, s *listState, rng *rand.Rand, client *http.Client) (int, error) {
	// Oldest first, as a reconciliation job reads; the cursor carries the
	// order, so every page of a listing asks for the same one.
	q := url.Values{"limit": {strconv.Itoa(pageSize)}, "order": {"asc"}}
	if s.cursor == "" || s.pages >= 20 {
		// Start at a random point of a random receiver's history, as a job
		// asking for "since yesterday" does.
		s.receiver = rng.IntN(len(data.receivers))
		at := data.from.Add(time.Duration(rng.Int64N(int64(data.to.Sub(data.from)))))
		q.Set("created_after", at.UTC().Format(time.RFC3339Nano))
		s.pages = 0
	} else {
		q.Set("cursor", s.cursor)
	}
	err := get(client, api+"/v1/notifications?"+q.Encode(), data.receivers[s.receiver].APIKey, &s.body)
	var rows int
	if err == nil {
		rows, s.cursor, err = pageSummary(s.body)
	}
	if err != nil {
		s.cursor = ""
		return 0, err
	}
	s.pages++
	return rows, nil
}

// pageSummary reads what the load generator needs from a listing page: the
// number of rows and next_cursor ("" on the last page). It walks the data
// array without decoding the rows: decoding whole pages with encoding/json
// cost the generator more CPU than the API spent producing them, on the
// same two cores, so the figures measured the generator as much as the
// API. The whole answer is still read; the API's tests check what is in
// it.
func pageSummary(b []byte) (rows int, next string, err error) {
	const head = `{"data":[`
	if !bytes.HasPrefix(b, []byte(head)) {
		return 0, "", fmt.Errorf("page does not start with %s: %.80q", head, b)
	}
	i, depth := len(head), 1 // inside the data array
	for depth > 0 {
		if i >= len(b) {
			return 0, "", errors.New("page ends inside its data")
		}
		switch b[i] {
		case '"':
			// Skip the string: its end is the first quote not escaped by
			// an odd number of backslashes.
			for i++; ; i++ {
				j := bytes.IndexByte(b[i:], '"')
				if j < 0 {
					return 0, "", errors.New("page ends inside a string")
				}
				i += j
				k := i
				for b[k-1] == '\\' {
					k--
				}
				if (i-k)%2 == 0 {
					break
				}
			}
		case '{', '[':
			if depth == 1 {
				rows++
			}
			depth++
		case '}', ']':
			depth--
		}
		i++
	}
	if i >= len(b) || b[i] != ',' {
		return 0, "", fmt.Errorf("no fields after data: %.80q", b[i:])
	}
	var tail struct {
		NextCursor *string `json:"next_cursor"`
		HasMore    *bool   `json:"has_more"`
	}
	rest := append([]byte{'{'}, b[i+1:]...)
	if err := json.Unmarshal(rest, &tail); err != nil || tail.HasMore == nil || *tail.HasMore != (tail.NextCursor != nil) {
		return 0, "", fmt.Errorf("bad page end %.80q: %v", rest, err)
	}
	if tail.NextCursor != nil {
		next = *tail.NextCursor
	}
	return rows, next, nil
}

// authGet requests u as the receiver whose API key is token.
func authGet(client *http.Client, u, token string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return client.Do(req)
}

// get requests url with a bearer token and reads a 200 answer into *body
// (nil: discard).
func get(client *http.Client, u, token string, body *[]byte) error {
	resp, err := authGet(client, u, token)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if body == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	buf := bytes.NewBuffer((*body)[:0])
	_, err = buf.ReadFrom(resp.Body)
	*body = buf.Bytes()
	return err
}

// load runs conns goroutines in a closed loop (each sends its next request
// when the previous answer is read) for d, over keep-alive connections.
func (b *bench) load(ctx context.Context, label string, conns int, d time.Duration,
	do func(s *listState, rng *rand.Rand, client *http.Client) (int, error)) *LoadResult {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true,
	}}
	defer client.CloseIdleConnections()
	var reqs, errs, rows atomic.Int64
	var firstErr atomic.Value
	lat := make([][]time.Duration, conns)
	start := time.Now()
	stop := start.Add(d)
	var wg sync.WaitGroup
	for w := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w)+1, uint64(start.UnixNano())))
			s := &listState{}
			for time.Now().Before(stop) && ctx.Err() == nil {
				t := time.Now()
				n, err := do(s, rng, client)
				lat[w] = append(lat[w], time.Since(t))
				reqs.Add(1)
				rows.Add(int64(n))
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case <-done:
			break wait
		case <-tick.C:
			el := time.Since(start).Seconds()
			b.prog.update("%s: %.0f/%.0f s, %s requests, %s", label, el, d.Seconds(), thousands(reqs.Load()), fmtRate(float64(reqs.Load())/el))
		}
	}
	secs := time.Since(start).Seconds()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	r := &LoadResult{Conns: conns, Seconds: round(secs, 2), Requests: reqs.Load(), Errors: errs.Load(),
		PerSecond: round(float64(reqs.Load())/secs, 1), Latency: distOf(all)}
	if v, ok := firstErr.Load().(string); ok {
		r.FirstErr = firstLine(v)
	}
	if n := reqs.Load() - errs.Load(); n > 0 && rows.Load() > 0 {
		r.RowsPerPage = round(float64(rows.Load())/float64(n), 1)
	}
	b.prog.done("%s: %s req/s, %s", label, thousands(int64(r.PerSecond)), r.Latency)
	return r
}
