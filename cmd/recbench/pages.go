package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/townwatch/townwatch/viewer/browsertest"
)

// The officer the -playload run plays footage and exports as, and the reason the player
// page and the export ask for (both are audited).
const (
	officerAccount = "straznik"
	playbackReason = "recbench: zátěž přehrávání / playback load"
)

// pageTimeout bounds bringing a page up once the browser runs (the form, the player,
// every tile playing): seconds on a healthy machine.
const pageTimeout = 90 * time.Second

// player is one headless Chromium (a fresh profile) showing /playback with its tiles.
type player struct {
	cams   []string
	ctx    context.Context
	cancel func() // ends the browser
}

// checkChromium fails, saying how to get it, when Debian's chromium is missing.
func checkChromium() error {
	if _, err := os.Stat(browsertest.ChromiumPath); err != nil {
		return fmt.Errorf("-playload needs Debian's chromium at %s (install it with `make deps`): %w", browsertest.ChromiumPath, err)
	}
	return nil
}

// openPlayer starts a browser with the officer's session, opens /playback for cams at
// wall time at, gives the reason and starts playback, as the officer does. It returns
// once every tile plays, or with a note saying which did not within pageTimeout.
func openPlayer(ctx context.Context, dir, base string, cookies []*http.Cookie, cams []string, at time.Time) (_ *player, note string, err error) {
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, browsertest.Options(dir)...)
	quiet := func(string, ...any) {}
	bctx, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithLogf(quiet), chromedp.WithErrorf(quiet))
	p := &player{cams: cams, ctx: bctx, cancel: func() { cancelBrowser(); cancelAlloc() }}
	defer func() {
		if err != nil {
			p.cancel()
		}
	}()
	// The first action allocates the browser, which then lives as long as the context it
	// was given: bctx, not the bounded one below.
	if err := chromedp.Do(bctx); err != nil {
		return nil, "", fmt.Errorf("starting chromium: %w", err)
	}
	start, cancel := context.WithTimeout(bctx, pageTimeout)
	defer cancel()
	httpOnly := true
	for _, c := range cookies {
		if _, err := chromedp.Call(start, network.SetCookie, network.SetCookieParams{Name: c.Name, Value: c.Value, URL: base + "/",
			HTTPOnly: &httpOnly, SameSite: network.CookieSameSiteStrict}); err != nil {
			return nil, "", fmt.Errorf("placing the session cookie: %w", err)
		}
	}
	u := base + "/playback?camera=" + url.QueryEscape(strings.Join(cams, ",")) + "&t=" + url.QueryEscape(at.UTC().Format(time.RFC3339))
	if err := chromedp.Do(start, chromedp.Navigate(u)); err != nil {
		return nil, "", fmt.Errorf("loading %s: %w", u, err)
	}
	if err := p.wait(start, "the start form", `document.body.dataset.ready === "1"`); err != nil {
		return nil, "", err
	}
	if err := chromedp.Do(start, chromedp.SendKeys("#reason", playbackReason), chromedp.Click("#start-button")); err != nil {
		return nil, "", fmt.Errorf("starting playback: %w", err)
	}
	if err := p.wait(start, "the player", `document.body.dataset.phase === "player"`); err != nil {
		return nil, "", err
	}
	// A starved browser may take long to get every tile going: that is a figure (the
	// play rate, the tiles' states), not a failure.
	if err := p.wait(start, "every tile playing", `window.townwatch.state().tiles.every((t) => t.state === "playing")`); err != nil {
		return p, err.Error(), nil
	}
	return p, "", nil
}

// wait evaluates the boolean expr every 200 ms until it is true; the error names what
// was awaited and, from the page, its tiles' states.
func (p *player) wait(ctx context.Context, what, expr string) error {
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err == nil && ok {
			return nil
		}
		if ctx.Err() != nil {
			last, cancel := context.WithTimeout(p.ctx, 5*time.Second)
			defer cancel()
			st, _ := chromedp.Run(last, chromedp.Evaluate[string](`JSON.stringify(window.townwatch ? window.townwatch.state() : document.body.dataset)`))
			return fmt.Errorf("page of %s: %s: not within %v (last error %v; page state %s)", strings.Join(p.cams, ","), what, pageTimeout, err, st)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// tileSample is a tile's state and presented frame (wall ms) at a moment.
type tileSample struct {
	ID        string   `json:"id"`
	State     string   `json:"state"`
	Presented *float64 `json:"presented"`
}

// pageSample is what a page shows at a moment, with the time it was read.
type pageSample struct {
	at    time.Time
	tiles []tileSample
}

// sample reads the page's tiles (window.townwatch.state() of playback.js).
func (p *player) sample() (pageSample, error) {
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	st, err := chromedp.Run(ctx, chromedp.Evaluate[struct {
		Tiles []tileSample `json:"tiles"`
	}](`window.townwatch.state()`))
	if err != nil {
		return pageSample{}, fmt.Errorf("page of %s: reading its state: %w", strings.Join(p.cams, ","), err)
	}
	return pageSample{at: time.Now(), tiles: st.Tiles}, nil
}

// playRates is how fast each tile's presented frame advanced between two samples of a
// page, in seconds of footage per second (1 is real time); a tile without a presented
// frame at either end counts 0.
func playRates(a, b pageSample) []float64 {
	var out []float64
	wall := b.at.Sub(a.at).Seconds()
	for i, t := range b.tiles {
		rate := 0.0
		if i < len(a.tiles) && a.tiles[i].Presented != nil && t.Presented != nil && wall > 0 {
			rate = (*t.Presented - *a.tiles[i].Presented) / 1000 / wall
		}
		out = append(out, rate)
	}
	return out
}
