package browsertest

// Helpers: start headless Chromium for a test, run steps with timeouts,
// stand in for the client's redirect URI, and save screenshots.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/latchkey-dev/latchkey/internal/testserver"
)

// Timeouts. A test takes a few seconds; the limits are generous because CI
// machines run the whole module's tests at once, and only end a hang.
const (
	// browserTimeout bounds everything one test does in its browser.
	browserTimeout = 2 * time.Minute
	// stepTimeout bounds one step (a navigation, a click and the page load
	// it causes, a query). A step that times out fails the test, and the tab
	// stays open for the failure screenshot.
	stepTimeout = 30 * time.Second
)

// tab is one headless Chromium (one browser, one tab) driven by one test.
type tab struct {
	t   *testing.T
	ctx context.Context // the tab; ends at the test's cleanup

	// callbacks receives the URL of each page load at testserver.Redirect's
	// origin. Nothing listens there: the tab answers those requests itself
	// with a stub page (see interceptCallbacks).
	callbacks chan *url.URL

	mu       sync.Mutex
	problems []string // console errors and exceptions, "URL: text"
	allowed  []string // substrings of problems the test expects
	shots    int
}

// newTab starts Chromium for t. It fails the test if Chromium is missing,
// unless LATCHKEY_TEST_BROWSER=off.
func newTab(t *testing.T) *tab {
	t.Helper()
	if os.Getenv("LATCHKEY_TEST_BROWSER") == "off" {
		t.Skip("LATCHKEY_TEST_BROWSER=off: skipping the browser tests")
	}
	exe, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("the browser tests need Chromium on PATH (%v); install it with "+
			"`apt-get update && apt-get install -y chromium chromium-driver` (as .ci/run does), "+
			"or set LATCHKEY_TEST_BROWSER=off to skip them", err)
	}
	profile := t.TempDir() // removed after the browser has exited (cleanups run last-in first-out)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(profile),
		chromedp.Headless,
		chromedp.NoSandbox, // we run as root in CI
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1280, 900),
	)
	root, cancelRoot := context.WithTimeout(context.Background(), browserTimeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(root, opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // waits for the browser process to exit
		cancelRoot()
	})

	tb := &tab{t: t, ctx: ctx, callbacks: make(chan *url.URL, 8)}
	// The first action starts the browser and binds its life to the context
	// it is given: ctx itself (bounded by browserTimeout), not a step's.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium (%s): %v", exe, err)
	}
	tb.watchConsole()
	start, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if err := tb.interceptCallbacks(start); err != nil {
		t.Fatalf("intercept %s: %v", testserver.Redirect, err)
	}
	// Registered after the browser's cleanup, so it runs before it.
	t.Cleanup(tb.afterTest)
	return tb
}

// stubCallback is what the tab shows at the client's redirect URI.
const stubCallback = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Client callback (test stub)</title></head>` +
	`<body><h1 id="stub-callback">Client callback (test stub)</h1></body></html>`

// interceptCallbacks answers every request to testserver.Redirect's origin
// with stubCallback, and sends the URL of each document request to
// tb.callbacks. So the redirect back to the client is observed exactly, and
// does not depend on what (if anything) listens on localhost:9999.
func (tb *tab) interceptCallbacks(ctx context.Context) error {
	ru, err := url.Parse(testserver.Redirect)
	if err != nil {
		return err
	}
	paused := chromedp.Events(tb.ctx, fetch.RequestPaused) // subscribe before enabling
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{
		Patterns: []*fetch.RequestPattern{{URLPattern: ru.Scheme + "://" + ru.Host + "/*"}},
	}); err != nil {
		return err
	}
	go func() {
		for ev, err := range paused {
			if err != nil {
				return // the tab ended
			}
			if ev.ResourceType == network.ResourceTypeDocument {
				if u, err := url.Parse(ev.Request.URL); err == nil {
					select {
					case tb.callbacks <- u:
					default:
					}
				}
			}
			rctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
			_, _ = chromedp.Call(rctx, fetch.FulfillRequest, fetch.FulfillRequestParams{
				RequestID:    ev.RequestID,
				ResponseCode: 200,
				ResponseHeaders: []*fetch.HeaderEntry{
					{Name: "Content-Type", Value: "text/html; charset=utf-8"},
					{Name: "Cache-Control", Value: "no-store"},
				},
				Body: []byte(stubCallback),
			})
			cancel()
		}
	}()
	return nil
}

// watchConsole records console errors and uncaught exceptions of the pages.
func (tb *tab) watchConsole() {
	messages := chromedp.Console(tb.ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				tb.mu.Lock()
				tb.problems = append(tb.problems, fmt.Sprintf("%s: %s", m.URL, m.Text))
				tb.mu.Unlock()
			}
		}
	}()
}

// afterTest saves a screenshot when the test failed, and fails the test if
// a page logged an error to the console (a CSP violation, a missing asset,
// a script error).
func (tb *tab) afterTest() {
	t := tb.t
	if t.Failed() {
		path, loc, err := tb.screenshot("failure")
		if err != nil {
			t.Logf("no failure screenshot: %v", err)
		} else {
			t.Logf("screenshot of the tab at failure (%s): %s", loc, path)
		}
		return
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
next:
	for _, p := range tb.problems {
		for _, a := range tb.allowed {
			if strings.Contains(p, a) {
				continue next
			}
		}
		t.Errorf("browser console: %s", p)
	}
}

// allowConsole makes afterTest accept console errors that contain s.
func (tb *tab) allowConsole(s string) {
	tb.mu.Lock()
	tb.allowed = append(tb.allowed, s)
	tb.mu.Unlock()
}

// artifactsDir is where screenshots go.
func artifactsDir() string {
	if d := os.Getenv("LATCHKEY_ARTIFACTS"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "latchkey-artifacts")
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// screenshot saves a full-page PNG of the tab as
// <artifacts>/<test>-<n>-<name>.png and returns its path and the page's URL.
func (tb *tab) screenshot(name string) (path, location string, err error) {
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	location, _ = chromedp.Run(ctx, chromedp.Location())
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return "", location, err
	}
	dir := artifactsDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", location, err
	}
	tb.mu.Lock()
	tb.shots++
	n := tb.shots
	tb.mu.Unlock()
	path = filepath.Join(dir, fmt.Sprintf("%s-%02d-%s.png", unsafeName.ReplaceAllString(tb.t.Name(), "_"), n, name))
	return path, location, os.WriteFile(path, png, 0o644)
}

// shot saves a screenshot of the current page when LATCHKEY_SCREENSHOTS=1.
func (tb *tab) shot(name string) {
	tb.t.Helper()
	if os.Getenv("LATCHKEY_SCREENSHOTS") != "1" {
		return
	}
	path, _, err := tb.screenshot(name)
	if err != nil {
		tb.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	tb.t.Logf("screenshot: %s", path)
}

// do runs steps with the step timeout and fails the test on an error.
func (tb *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.t.Fatalf("%s: %v", what, err)
	}
}

// run runs one action that returns a value, like do.
func run[T any](tb *tab, what string, a chromedp.Action[T]) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		tb.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// navigate loads u and waits for the load event.
func (tb *tab) navigate(u string) {
	tb.t.Helper()
	tb.do("navigate to "+u, chromedp.Navigate(u))
}

// click clicks the element sel and waits for the page load it causes (a
// link or a form's submit button).
func (tb *tab) click(sel string) {
	tb.t.Helper()
	run(tb, "click "+sel+" and wait for the next page",
		chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.CSS(sel))))
}

// typeInto types s into the input sel (clearing it first): it focuses the
// input and sends key events, as chromedp.SendKeys does for a text input.
// SendKeys itself is not used: it reads the node's attribute list without
// its lock (chromedp v0.23.0, query.go), while the DOM event of Clear's
// value change writes it, which the race detector reported in CI.
func (tb *tab) typeInto(sel, s string) {
	tb.t.Helper()
	tb.do("type into "+sel, chromedp.Clear(chromedp.CSS(sel)), chromedp.Focus(chromedp.CSS(sel)), chromedp.KeyEvent(s))
}

// text is the visible text of the first element matching sel.
func (tb *tab) text(sel string) string {
	tb.t.Helper()
	return run(tb, "read the text of "+sel, chromedp.Text(chromedp.CSS(sel)))
}

// value is the value of the input sel.
func (tb *tab) value(sel string) string {
	tb.t.Helper()
	return run(tb, "read the value of "+sel, chromedp.Value(chromedp.CSS(sel)))
}

// location is the URL of the current page.
func (tb *tab) location() string {
	tb.t.Helper()
	return run(tb, "read the location", chromedp.Location())
}

// title is the title of the current page.
func (tb *tab) title() string {
	tb.t.Helper()
	return run(tb, "read the title", chromedp.Title())
}

// has reports whether the current page has an element matching sel, without
// waiting for one to appear.
func (tb *tab) has(sel string) bool {
	tb.t.Helper()
	q, _ := json.Marshal(sel)
	return run(tb, "look for "+sel, chromedp.Evaluate[bool](fmt.Sprintf("document.querySelector(%s) !== null", q)))
}

// mustHave fails the test unless the current page has elements matching
// every selector.
func (tb *tab) mustHave(sels ...string) {
	tb.t.Helper()
	for _, s := range sels {
		if !tb.has(s) {
			tb.t.Errorf("page %s has no %s", tb.location(), s)
		}
	}
}

// cookie returns the browser's cookie name for u.
func (tb *tab) cookie(u, name string) *network.Cookie {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{u}})
	if err != nil {
		tb.t.Fatalf("get cookies: %v", err)
	}
	for _, c := range res.Cookies {
		if c.Name == name {
			return c
		}
	}
	names := make([]string, 0, len(res.Cookies))
	for _, c := range res.Cookies {
		names = append(names, c.Name)
	}
	tb.t.Fatalf("no cookie %q for %s (have %s)", name, u, strings.Join(names, ", "))
	return nil
}

// callback waits for the tab to load the client's redirect URI and returns
// the URL it loaded.
func (tb *tab) callback() *url.URL {
	tb.t.Helper()
	select {
	case u := <-tb.callbacks:
		return u
	case <-time.After(stepTimeout):
		tb.t.Fatalf("the browser was not sent to %s within %v (it is at %s)", testserver.Redirect, stepTimeout, tb.location())
	case <-tb.ctx.Done():
		tb.t.Fatalf("waiting for %s: %v", testserver.Redirect, errors.Join(tb.ctx.Err(), context.Cause(tb.ctx)))
	}
	return nil
}
