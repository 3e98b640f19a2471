package console_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/notifyd/notifyd/cmd/notifyd/notifydtest"
	"github.com/notifyd/notifyd/internal/apitest"
)

// The browser tests drive Debian's chromium headless through chromedp: one
// browser for the package, one isolated browser context (own cookies) per
// test. scripts/services.sh installs chromium; without it they skip.

var (
	browserOnce   sync.Once
	browserCtx    context.Context
	browserErr    error
	browserCancel = func() {}
)

func TestMain(m *testing.M) {
	code := m.Run()
	browserCancel()
	os.Exit(code)
}

func chromiumPath() (string, error) {
	var err error
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		var p string
		if p, err = exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", err
}

// chrome returns a tab of its own for t, which saves a screenshot into the
// test's artifact directory (its temporary directory; kept with
// `go test -artifacts`) if t fails.
func chrome(t *testing.T) context.Context {
	t.Helper()
	browserOnce.Do(func() {
		path, err := chromiumPath()
		if err != nil {
			browserErr = err
			return
		}
		opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
			chromedp.DisableGPU, chromedp.WindowSize(1280, 1000))
		alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancelCtx := chromedp.NewContext(alloc)
		// The first run starts the browser; it lives as long as ctx.
		if browserErr = chromedp.Do(ctx); browserErr != nil {
			cancelCtx()
			cancelAlloc()
			return
		}
		browserCtx, browserCancel = ctx, func() { cancelCtx(); cancelAlloc() }
	})
	if browserErr != nil {
		t.Skipf("chromium is not available (%v): ./scripts/services.sh installs it", browserErr)
	}
	tab, cancelTab := chromedp.NewContext(browserCtx, chromedp.WithNewBrowserContext())
	// The first run opens the tab, which lives as long as that run's
	// context: the tab's own, not a step's bounded one.
	if err := chromedp.Do(tab); err != nil {
		cancelTab()
		t.Fatalf("open a tab: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			screenshot(t, tab)
		}
		cancelTab()
	})
	return tab
}

// screenshot saves the page as it is into the test's artifact directory.
func screenshot(t *testing.T, tab context.Context) {
	ctx, cancel := context.WithTimeout(tab, 20*time.Second)
	defer cancel()
	png, err := capture(ctx)
	path := filepath.Join(t.ArtifactDir(), "failure.png")
	if err == nil {
		err = os.WriteFile(path, png, 0o644)
	}
	if err != nil {
		t.Logf("no screenshot: %v", err)
		return
	}
	t.Logf("screenshot of the page at the failure: %s", path)
}

// capture takes a PNG of the page. Only the active tab draws frames, and
// each test has a tab of its own, so the page is brought to the front first.
func capture(ctx context.Context) ([]byte, error) {
	front := chromedp.Action[chromedp.Void](func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, t, page.BringToFront, cdp.Empty{})
		return chromedp.Void{}, err
	})
	if err := chromedp.Do(ctx, front); err != nil {
		return nil, err
	}
	return chromedp.Run(ctx, chromedp.CaptureScreenshot())
}

// do runs browser steps, each bounded so a missing element fails the test
// in a minute rather than at the test binary's timeout.
func do(t *testing.T, tab context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func must(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// text is the visible text of the first element matching css.
func text(t *testing.T, ctx context.Context, css string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css)))
	must(t, err, "text of "+css)
	return s
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	must(t, err, js)
	return v
}

// reloadUntil reloads the page until ok is true of it.
func reloadUntil(t *testing.T, ctx context.Context, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(300 * time.Millisecond)
		do(t, ctx, "reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("main")))
	}
}

func browserLogin(t *testing.T, ctx context.Context, base, token string) {
	t.Helper()
	do(t, ctx, "log in", chromedp.Navigate(base+"/console/login"),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Submit(chromedp.CSS("#token")),
		chromedp.WaitVisible(chromedp.CSS("form.logout")))
}

// TestBrowserOperator is the on-call engineer's path: log in, create a
// receiver, find a notification by its key, read its attempts, redeliver it
// with the button and see the new attempt, and find the failing receiver's
// notification among the dead letters.
func TestBrowserOperator(t *testing.T) {
	s := notifydtest.Start(t)
	ctx := chrome(t)
	healthy, failing := apitest.NewCallbackServer(t, http.StatusOK), apitest.NewCallbackServer(t, http.StatusServiceUnavailable)
	browserLogin(t, ctx, s.URL, apitest.AdminToken)

	do(t, ctx, "create a receiver",
		chromedp.Navigate(s.URL+"/console/receivers/new"),
		chromedp.SendKeys(chromedp.CSS("input[name=name]"), "Acme shop"),
		chromedp.SendKeys(chromedp.CSS("input[name=callback_url]"), healthy.URL+"/notify"),
		chromedp.Click(chromedp.CSS("#create")),
		chromedp.WaitVisible(chromedp.CSS("#api-key")))
	rid := text(t, ctx, "#receiver-id")
	if key := text(t, ctx, "#api-key"); !strings.HasPrefix(key, "nfy_") {
		t.Fatalf("created receiver's API key %q", key)
	}
	bad := s.CreateReceiver(failing.URL, nil)
	id := send(t, s, rid, "order-1001", map[string]any{"amount": 1200})
	failedID := send(t, s, bad.ID, "order-2002", map[string]any{"amount": 99})

	do(t, ctx, "find the notification by its key",
		chromedp.Navigate(s.URL+"/console/notifications"),
		chromedp.SetValue(chromedp.CSS("select[name=receiver]"), rid),
		chromedp.SendKeys(chromedp.CSS("input[name=key]"), "order-1001"),
		chromedp.Submit(chromedp.CSS("input[name=key]")),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/console/notifications/`+id+`"]`)),
		chromedp.Click(chromedp.CSS(`a[href="/console/notifications/`+id+`"]`)),
		chromedp.WaitVisible(chromedp.CSS("#attempts")))
	if got := text(t, ctx, "#idempotency-key"); got != "order-1001" {
		t.Fatalf("detail page of key %q", got)
	}
	reloadUntil(t, ctx, "the first attempt", func() bool {
		return eval[int](t, ctx, `document.querySelectorAll("tr.attempt").length`) == 1
	})
	if row := text(t, ctx, "tr.attempt"); !strings.Contains(row, "200") || !strings.Contains(row, "success") {
		t.Errorf("first attempt row %q, want 200 success", row)
	}

	do(t, ctx, "redeliver", chromedp.Click(chromedp.CSS("#redeliver")), chromedp.WaitVisible(chromedp.CSS(".flash")))
	reloadUntil(t, ctx, "the redelivery's attempt", func() bool {
		return eval[int](t, ctx, `document.querySelectorAll("tr.attempt").length`) == 2
	})
	if row := text(t, ctx, "tr.attempt"); !strings.Contains(row, "manual") {
		t.Errorf("newest attempt row %q, want the manual redelivery", row)
	}

	s.WaitStatus(90*time.Second, "failed", failedID)
	do(t, ctx, "dead letters", chromedp.Navigate(s.URL+"/console/dead-letters"), chromedp.WaitVisible(chromedp.CSS("#archived")))
	if !eval[bool](t, ctx, `!!document.querySelector('a[href="/console/notifications/`+failedID+`"]')`) {
		t.Error("the failed notification is not among the dead letters")
	}
	do(t, ctx, "overview", chromedp.Navigate(s.URL+"/console/overview"), chromedp.WaitVisible(chromedp.CSS("#chart")))
	// The overview's figures are at most 15 s old: the login's landing page
	// computed them before anything was sent.
	reloadUntil(t, ctx, "the failed notification in the overview's figures", func() bool {
		return text(t, ctx, "#hour-failed") == "1"
	})
	if n := eval[int](t, ctx, `document.querySelectorAll("#chart rect.o-success").length`); n == 0 {
		t.Error("the overview's chart shows no successful attempt")
	}
}

// TestBrowserReceiverPortal logs in as a receiver: a payload carrying a
// script shows as text and does not run, another receiver's notification
// is not found by its URL, and a form posted without its CSRF token is
// refused.
func TestBrowserReceiverPortal(t *testing.T) {
	s := notifydtest.Start(t)
	ctx := chrome(t)
	cb := apitest.NewCallbackServer(t, http.StatusOK)
	a, b := s.CreateReceiver(cb.URL, nil), s.CreateReceiver(cb.URL, nil)
	evil := `<script>window.pwned = 1</script>`
	aID := send(t, s, a.ID, "a-evil", map[string]any{"note": evil})
	bID := send(t, s, b.ID, "b-secret-order", map[string]any{"n": 1})
	s.WaitStatus(90*time.Second, "delivered", aID, bID)

	browserLogin(t, ctx, s.URL, a.APIKey)
	do(t, ctx, "own notification", chromedp.Navigate(s.URL+"/console/notifications/"+aID), chromedp.WaitVisible(chromedp.CSS("#envelope")))
	if env := text(t, ctx, "#envelope"); !strings.Contains(env, `\u003cscript\u003ewindow.pwned = 1\u003c/script\u003e`) && !strings.Contains(env, evil) {
		t.Errorf("envelope %q does not show the payload's script as text", env)
	}
	if eval[bool](t, ctx, `typeof window.pwned !== "undefined"`) {
		t.Fatal("the payload's script ran")
	}

	do(t, ctx, "B's notification", chromedp.Navigate(s.URL+"/console/notifications/"+bID), chromedp.WaitVisible(chromedp.CSS("main")))
	if body := text(t, ctx, "main"); !strings.Contains(body, "Not found") || strings.Contains(body, "b-secret-order") {
		t.Errorf("B's notification as A: %q, want not found", body)
	}

	do(t, ctx, "own notification", chromedp.Navigate(s.URL+"/console/notifications/"+aID), chromedp.WaitVisible(chromedp.CSS("#redeliver")))
	eval[bool](t, ctx, `document.querySelectorAll("input[name=csrf]").forEach(e => e.remove()); true`)
	do(t, ctx, "post without CSRF", chromedp.Click(chromedp.CSS("#redeliver")), chromedp.WaitVisible(chromedp.CSS(".error")))
	if msg := text(t, ctx, ".error"); !strings.Contains(msg, "CSRF") {
		t.Errorf("refusal %q, want it to name the CSRF token", msg)
	}
	time.Sleep(time.Second)
	if n := attempts(t, s, aID); n != 1 {
		t.Errorf("%d attempts after a refused redelivery, want 1", n)
	}
}
