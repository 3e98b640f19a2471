package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/store"
)

// targetIngestCeilingRatio is issue 14's goal for HTTP ingest: delivered/s
// through POST /v1/notifications at least this multiple of the no-op Asynq
// ceiling (scenario 2) of the same run.
const targetIngestCeilingRatio = 1.2

// IngestResult is the ingest scenario: the throughput scenario's N
// notifications to its receivers, sent through POST /v1/notifications (or,
// with --ingest-batch above 1, POST /v1/notifications/batch) of a notifyd
// API process (its own process, a producer record's token, keep-alive
// connections) while a notifyd worker process delivers them.
type IngestResult struct {
	N           int       `json:"n"`
	Conns       int       `json:"conns"`
	Batch       int       `json:"batch"`
	Seconds     float64   `json:"seconds"`
	PerSecond   float64   `json:"delivered_per_s"`
	AcceptRate  float64   `json:"accepted_per_s"`
	CPU         *CPUSplit `json:"cpu"`
	CPUPerNotif float64   `json:"cpu_us_per_notification"`
	// APICPUPerNotif is the API process's part of CPUPerNotif (the CPU
	// split counts the API and the worker together as notifyd).
	APICPUPerNotif float64 `json:"api_cpu_us_per_notification"`
	// Ratio is PerSecond over the ceiling scenario's no-op tasks/s (nil
	// without that scenario).
	Ratio *float64 `json:"ceiling_ratio"`
	// AcceptRatio is AcceptRate over the ceiling: what the API takes in,
	// whatever the worker delivers.
	AcceptRatio *float64  `json:"accept_ceiling_ratio"`
	Profile     string    `json:"cpuprofile,omitempty"`
	Runs        []float64 `json:"runs_per_s"`
}

func (b *bench) ingestScenario(ctx context.Context) error {
	cfg := b.cfg
	token, err := b.createProducer(ctx)
	if err != nil {
		return err
	}
	var runs []*IngestResult
	for rep := range cfg.repeat {
		r, err := b.ingestRun(ctx, rep, token)
		if err != nil {
			return err
		}
		runs = append(runs, r)
	}
	r := median(runs, func(r *IngestResult) float64 { return r.PerSecond })
	for _, run := range runs {
		r.Runs = append(r.Runs, run.PerSecond)
	}
	if c := b.res.Ceiling; c != nil && c.PerSecond > 0 {
		ratio, accept := round(r.PerSecond/c.PerSecond, 3), round(r.AcceptRate/c.PerSecond, 3)
		r.Ratio, r.AcceptRatio = &ratio, &accept
	}
	b.res.Ingest = r
	b.ingestRows(r)
	return nil
}

func (b *bench) ingestRows(r *IngestResult) {
	route := "POST /v1/notifications"
	if r.Batch > 1 {
		route = fmt.Sprintf("POST /v1/notifications/batch, %d a request", r.Batch)
	}
	figure := fmt.Sprintf("%s delivered/s through %s (%s, %d conns, first request → last delivered in PG)%s",
		strings.TrimSuffix(fmtRate(r.PerSecond), "/s"), route, thousands(int64(r.N)), r.Conns, runsNote(r.Runs))
	if r.Ratio == nil {
		b.rows = append(b.rows, row{"7 ingest", figure, "≥ 1.2× ceiling (needs ceiling)", "-"})
	} else {
		met, text := verdict(*r.Ratio, targetIngestCeilingRatio, true)
		b.target("ingest_ceiling_ratio", met, text)
		b.rows = append(b.rows, row{"7 ingest", figure + fmt.Sprintf("; %.2f× the ceiling", *r.Ratio), "≥ 1.2× ceiling", text},
			row{"  accepted", fmt.Sprintf("%s (last request answered), %.2f× the ceiling", fmtRate(r.AcceptRate), *r.AcceptRatio), "", ""})
	}
	b.rows = append(b.rows,
		row{"  cpu: % of a core (share)", strings.Replace(r.CPU.String(), "notifyd", "notifyd api+worker", 1), "", ""},
		row{"  cpu per notification", fmt.Sprintf("%.0f µs of CPU (notifyd+postgres+redis+receiver), of which the API process %.0f µs",
			r.CPUPerNotif, r.APICPUPerNotif), "", ""},
	)
}

// ingestRun is one run: a fresh worker and API process on an empty queue.
func (b *bench) ingestRun(ctx context.Context, rep int, token string) (*IngestResult, error) {
	cfg := b.cfg
	w, err := b.startNotifyd(ctx)
	if err != nil {
		return nil, err
	}
	defer b.stopChild(w)
	apiArgs := []string{"-worker=false", "-api"}
	profile := ""
	if cfg.cpuprofile != "" && rep == 0 {
		profile = cfg.cpuprofile + ".ingest"
		apiArgs = append(apiArgs, "-cpuprofile", profile)
	}
	api, err := b.startChild(ctx, "notifyd", b.notifydArgs(b.dbURL, apiArgs...)...)
	if err != nil {
		return nil, err
	}
	defer b.stopChild(api)
	rs := b.okReceivers
	base, err := b.deliveredCount(ctx, ids(rs))
	if err != nil {
		return nil, err
	}
	label := runLabel("ingest", rep, cfg.repeat)
	client := keepAliveClient(cfg.ingestConns)
	defer client.CloseIdleConnections()
	// Request i sends notifications i*batch up to the next request's.
	batch := cfg.ingestBatch
	send := func(ctx context.Context, i int) error {
		items := make([]ingestItem, 0, batch)
		for j := i * batch; j < min(cfg.n, (i+1)*batch); j++ {
			items = append(items, ingestItem{ReceiverID: rs[j%len(rs)].ID, EventType: eventType,
				IdempotencyKey: fmt.Sprintf("in%d-%d", rep, j), Payload: b.payload(j)})
		}
		return postNotifications(ctx, client, api.ready["api"], token, items)
	}
	apiBefore, _, _ := procTicks(fmt.Sprintf("/proc/%d", api.pid()))
	before := b.sampler.snapshot()
	start := time.Now()
	p := startProducers(ctx, func(ctx context.Context) error {
		return b.produceFrom(ctx, cfg.ingestConns, (cfg.n+batch-1)/batch, send)
	})
	defer p.stop()
	timeout := max(5*time.Minute, time.Duration(cfg.n/200)*time.Second)
	end, err := b.waitDelivered(p.ctx, label, ids(rs), base, cfg.n, start, timeout)
	if err != nil {
		return nil, cause(p.ctx, err)
	}
	split := cpuDelta(before, b.sampler.snapshot())
	apiAfter, _, _ := procTicks(fmt.Sprintf("/proc/%d", api.pid()))
	if err := p.wait(); err != nil {
		return nil, err
	}
	secs := end.Sub(start).Seconds()
	r := &IngestResult{N: cfg.n, Conns: cfg.ingestConns, Batch: batch, Seconds: round(secs, 3), PerSecond: round(float64(cfg.n)/secs, 1),
		AcceptRate: round(float64(cfg.n)/p.end.Sub(start).Seconds(), 1), CPU: split, Profile: profile,
		APICPUPerNotif: round(float64(apiAfter-apiBefore)/clockTicks/float64(cfg.n)*1e6, 1)}
	var total float64
	for _, k := range cpuOrder {
		if k != cpuBench {
			total += split.Seconds[k]
		}
	}
	r.CPUPerNotif = round(total/float64(cfg.n)*1e6, 1)
	b.prog.done("%s: %s delivered in %.2f s: %s (accepted at %s)", label, thousands(int64(cfg.n)), secs, fmtRate(r.PerSecond), fmtRate(r.AcceptRate))
	return r, nil
}

// createProducer makes a producer record scoped to the throughput
// receivers, as an operator would for a payment system (POST
// /v1/producers), and returns its token.
func (b *bench) createProducer(ctx context.Context) (string, error) {
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	token := "nfp_" + base64.RawURLEncoding.EncodeToString(raw)
	p := &store.Producer{ID: uuid.New(), Name: "bench-ingest", Prefix: token[:10], Receivers: ids(b.okReceivers)}
	if err := b.st.CreateProducer(ctx, p, store.HashAPIKey(token)); err != nil {
		return "", fmt.Errorf("ingest: %w", err)
	}
	return token, nil
}

// keepAliveClient keeps one connection per concurrent sender open.
func keepAliveClient(conns int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns, t.MaxIdleConnsPerHost, t.MaxConnsPerHost = conns, conns, conns
	return &http.Client{Transport: t, Timeout: 30 * time.Second}
}

// ingestItem is one notification as the HTTP ingest takes it.
type ingestItem struct {
	ReceiverID     uuid.UUID       `json:"receiver_id"`
	EventType      string          `json:"event_type"`
	IdempotencyKey string          `json:"idempotency_key"`
	Payload        json.RawMessage `json:"payload"`
}

// postNotifications sends items through the HTTP ingest and checks that
// every one was accepted: one item alone through POST /v1/notifications
// (202), more through POST /v1/notifications/batch (200, none failed).
func postNotifications(ctx context.Context, client *http.Client, api, token string, items []ingestItem) error {
	var body any = items[0]
	path, want := "/v1/notifications", http.StatusAccepted
	if len(items) > 1 {
		body, path, want = map[string]any{"notifications": items}, "/v1/notifications/batch", http.StatusOK
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, api+path, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("ingest %s: %w", items[0].IdempotencyKey, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != want {
		return fmt.Errorf("ingest %s: %s: %.4096s", items[0].IdempotencyKey, strconv.Itoa(resp.StatusCode), answer)
	}
	if len(items) > 1 {
		var out struct{ Failed *int }
		if err := json.Unmarshal(answer, &out); err != nil || out.Failed == nil || *out.Failed != 0 {
			return fmt.Errorf("ingest %s: a batch answered %.4096s (%v)", items[0].IdempotencyKey, answer, err)
		}
	}
	return nil
}
