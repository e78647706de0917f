// Package browsertest holds end-to-end tests that drive Latchkey's pages in
// a real headless Chromium through chromedp: sign-in, consent, deny, a wrong
// password, dev mode's demo app, the account page (revoking an app, setting
// up two-step verification and signing in with it), and the example web app
// of examples/webapp. The package has no code of its own besides this
// comment; everything is in _test.go files.
//
// The tests need Chromium on PATH as "chromium" (Debian: apt-get install -y
// chromium chromium-driver, as .ci/run does). Without it they fail, unless
// LATCHKEY_TEST_BROWSER=off, which skips them.
//
// Screenshots: a failing test saves a full-page PNG of the tab into
// $LATCHKEY_ARTIFACTS (default: latchkey-artifacts in the system temporary
// directory) and logs the path. With LATCHKEY_SCREENSHOTS=1 every test also
// saves one PNG of each page it visits there, for a human to look at.
package browsertest
