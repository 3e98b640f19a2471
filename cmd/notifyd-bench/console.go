package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/notifyd/notifyd/internal/tasks"
)

// The console part of scenario 6: the web console's pages on the query
// run's rows, one connection each, logged in as the operator: the
// overview, a search by idempotency key, a notification's page and the
// receivers list (with each receiver's health over 24 h). The first
// overview and receivers list of the fresh API compute their cached
// figures: those are each run's max.

// consoleAdminToken is the query run's admin token (the console's login).
const consoleAdminToken = "bench-console-admin-token"

// targetConsoleP99MS is the bound on a console page.
const targetConsoleP99MS = 100

// ConsoleResult is the console's pages under load.
type ConsoleResult struct {
	Overview  *LoadResult `json:"overview_1_conn"`
	ByKey     *LoadResult `json:"search_by_key_1_conn"`
	Detail    *LoadResult `json:"detail_1_conn"`
	Receivers *LoadResult `json:"receivers_1_conn"`
}

var consoleCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// consoleLogin logs in as the operator and returns the session's Cookie
// header.
func (b *bench) consoleLogin(api string) (string, error) {
	resp, err := b.http.Get(api + "/console/login")
	if err != nil {
		return "", err
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := consoleCSRF.FindSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil {
		return "", fmt.Errorf("console login page: HTTP %d", resp.StatusCode)
	}
	form := url.Values{"csrf": {string(m[1])}, "token": {consoleAdminToken}}
	req, err := http.NewRequest(http.MethodPost, api+"/console/login", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range resp.Cookies() {
		req.AddCookie(c)
	}
	noRedirect := &http.Client{Timeout: b.http.Timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noRedirect.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "notifyd_console" && c.Value != "" {
			return c.Name + "=" + c.Value, nil
		}
	}
	return "", fmt.Errorf("console login: HTTP %d and no session", resp.StatusCode)
}

// consoleLoad measures the four pages; a build without the console (or
// without an admin token) skips them.
func (b *bench) consoleLoad(ctx context.Context, api string, data *queryData) *ConsoleResult {
	cookie, err := b.consoleLogin(api)
	if err != nil {
		b.prog.note("console: " + err.Error() + "; skipped")
		return nil
	}
	perReceiver := data.rows / int64(len(data.receivers))
	page := func(path func(rng *rand.Rand) string) func(*listState, *rand.Rand, *http.Client) (int, error) {
		return func(_ *listState, rng *rand.Rand, client *http.Client) (int, error) {
			req, err := http.NewRequest(http.MethodGet, api+path(rng), nil)
			if err != nil {
				return 0, err
			}
			req.Header.Set("Cookie", cookie)
			resp, err := client.Do(req)
			if err != nil {
				return 0, err
			}
			defer resp.Body.Close()
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				return 0, err
			}
			if resp.StatusCode != http.StatusOK {
				return 0, errors.New("HTTP " + strconv.Itoa(resp.StatusCode))
			}
			return 0, nil
		}
	}
	pick := func(rng *rand.Rand) (benchReceiver, string) {
		return data.receivers[rng.IntN(len(data.receivers))], "q-" + strconv.FormatInt(rng.Int64N(perReceiver), 10)
	}
	d := b.cfg.queryDuration
	r := &ConsoleResult{}
	r.Overview = b.load(ctx, "console overview, 1 conn", 1, d, page(func(*rand.Rand) string { return "/console/overview" }))
	r.ByKey = b.load(ctx, "console search by key, 1 conn", 1, d, page(func(rng *rand.Rand) string {
		rc, key := pick(rng)
		return "/console/notifications?" + url.Values{"receiver": {rc.ID.String()}, "key": {key}}.Encode()
	}))
	r.Detail = b.load(ctx, "console detail, 1 conn", 1, d, page(func(rng *rand.Rand) string {
		rc, key := pick(rng)
		return "/console/notifications/" + tasks.NotificationID(rc.ID, key).String()
	}))
	r.Receivers = b.load(ctx, "console receivers, 1 conn", 1, d, page(func(*rand.Rand) string { return "/console/receivers" }))
	return r
}

func (b *bench) consoleRows(r *ConsoleResult, on string) {
	if r == nil {
		return
	}
	for _, p := range []struct {
		label string
		lr    *LoadResult
	}{{"console overview", r.Overview}, {"console search by key", r.ByKey}, {"console notification page", r.Detail},
		{"console receivers list", r.Receivers}} {
		if p.lr == nil {
			continue
		}
		fig := fmt.Sprintf("%s %s, 1 conn: %s req/s, %s", p.label, on, thousands(int64(p.lr.PerSecond)), p.lr.Latency)
		_, text := verdict(p.lr.Latency.P99, targetConsoleP99MS, false)
		if p.lr.Requests == 0 || p.lr.Errors*100 > p.lr.Requests {
			text = fmt.Sprintf("invalid: %d errors (%s)", p.lr.Errors, p.lr.FirstErr)
		}
		b.rows = append(b.rows, row{"6 console", fig, "p99 ≤ 100 ms", text})
	}
}
