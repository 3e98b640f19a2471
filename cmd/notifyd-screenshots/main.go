// Command notifyd-screenshots takes the README's pictures of the web
// console from a running notifyd (scripts/screenshots.sh runs it against the
// demo): the operator's overview and the attempt timeline of a notification
// that failed, as PNG files, so the pictures show what the code renders.
//
//	notifyd-screenshots -url http://127.0.0.1:8080 -token demo-admin-token -out docs
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/chromedp/chromedp"
)

func main() {
	base := flag.String("url", "http://127.0.0.1:8080", "notifyd's API address")
	token := flag.String("token", os.Getenv("NOTIFYD_ADMIN_TOKEN"), "admin token to log in with")
	out := flag.String("out", "docs", "directory for the PNG files")
	flag.Parse()
	if err := run(*base, *token, *out); err != nil {
		fmt.Fprintln(os.Stderr, "notifyd-screenshots:", err)
		os.Exit(1)
	}
}

func run(base, token, out string) error {
	path, err := exec.LookPath("chromium")
	if err != nil {
		return errors.New("chromium not found: ./scripts/services.sh installs it")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1280, 900))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	browser, cancel := chromedp.NewContext(alloc)
	defer cancel()
	if err := chromedp.Do(browser); err != nil {
		return fmt.Errorf("start chromium: %w", err)
	}
	ctx, cancelRun := context.WithTimeout(browser, 2*time.Minute)
	defer cancelRun()
	err = chromedp.Do(ctx,
		chromedp.Navigate(base+"/console/login"),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Submit(chromedp.CSS("#token")),
		chromedp.WaitVisible(chromedp.CSS("form.logout")),
		chromedp.Navigate(base+"/console/overview"),
		chromedp.WaitVisible(chromedp.CSS("#chart")),
	)
	if err != nil {
		return fmt.Errorf("log in and open the overview: %w", err)
	}
	if err := shoot(ctx, filepath.Join(out, "console-overview.png")); err != nil {
		return err
	}
	// The newest failed notification: a timeline of retries and their answers.
	err = chromedp.Do(ctx,
		chromedp.Navigate(base+"/console/notifications?status=failed"),
		chromedp.Click(chromedp.CSS("table.list tbody a")),
		chromedp.WaitVisible(chromedp.CSS("#attempts")),
	)
	if err != nil {
		return fmt.Errorf("open a failed notification (did the demo run?): %w", err)
	}
	return shoot(ctx, filepath.Join(out, "console-notification.png"))
}

func shoot(ctx context.Context, path string) error {
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return fmt.Errorf("screenshot %s: %w", path, err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		return err
	}
	fmt.Println("wrote", path)
	return nil
}
