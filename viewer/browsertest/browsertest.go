// Package browsertest starts headless Chromium for the tests that drive townwatch's web
// pages (the viewer's page tests and the end-to-end tests of cmd/townwatch) and for the
// benchmark that plays footage in it (cmd/recbench -playload), so all start it the same way.
package browsertest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumPath is Debian's chromium, which `make deps` installs (CI runs make test).
const ChromiumPath = "/usr/bin/chromium"

// New starts headless Chromium with a fresh profile and returns the context of its first
// tab; the browser ends with the test. It fails the test, naming the reason, when
// Chromium is missing or does not start. Its flags are Options.
func New(tb testing.TB) context.Context {
	tb.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		tb.Fatalf("the browser tests need Debian's chromium at %s (%v): run `make deps`, which installs it", ChromiumPath, err)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), Options(tb.TempDir())...)
	quiet := func(string, ...any) {}
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(quiet), chromedp.WithErrorf(quiet))
	tb.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		tb.Fatalf("starting %s: %v", ChromiumPath, err)
	}
	return ctx
}

// Options are the flags Chromium runs with, in the tests and in the benchmarks that drive
// pages (cmd/recbench -playload): Debian's chromium, headless, with a fresh profile in
// userDataDir. They keep it from calling home and let WebRTC work over loopback: Chromium
// normally gathers no loopback candidates and hides host addresses behind mDNS names,
// which the server cannot resolve.
func Options(userDataDir string) []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(ChromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(userDataDir),
		chromedp.WindowSize(1280, 720),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
	}
}

// Eval evaluates a JavaScript expression in the tab of ctx (awaiting a promise) and
// decodes its value; it fails the test, naming the expression, when that takes longer
// than timeout or throws.
func Eval[T any](ctx context.Context, tb testing.TB, expr string, timeout time.Duration) T {
	tb.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}
