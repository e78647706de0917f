package server_test

import (
	"context"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"golang.org/x/oauth2"

	"github.com/latchkey-dev/latchkey/internal/config"
	"github.com/latchkey-dev/latchkey/internal/family"
	"github.com/latchkey-dev/latchkey/internal/flow"
	"github.com/latchkey-dev/latchkey/internal/mfa"
	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/testserver"
)

const (
	carol      = "carol"
	carolPW    = "carol's long password"
	carolTOTP  = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	mfaACR     = oauth.ACRMFA
	passwordAC = oauth.ACRPassword
)

// addCarol creates a user enrolled in TOTP, as `latchkey user create
// --totp-secret` does.
func addCarol(t *testing.T, ts *testserver.Server) {
	t.Helper()
	codec, err := mfa.NewCodec(ts.MasterKey)
	if err != nil {
		t.Fatal(err)
	}
	spec := operator.UserSpec{Username: carol, Password: carolPW, Factor: func(id string) []byte {
		return codec.Seal(id, &mfa.Factor{Secret: carolTOTP})
	}}
	if _, err := operator.CreateUser(context.Background(), ts.Store, spec, time.Now()); err != nil {
		t.Fatal(err)
	}
	ts.Remember(carolPW)
}

// totpAnswer answers code prompts with the current code for secret, moving
// the clock one step on for each answer so codes are never replayed.
func totpAnswer(t *testing.T, ts *testserver.Server, secret string) func(*flow.Page) string {
	return func(*flow.Page) string {
		ts.Clock.Advance(30 * time.Second)
		code, err := totp.GenerateCode(secret, ts.Clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		return code
	}
}

var manualKey = regexp.MustCompile(`class="manual-key">([A-Z2-7]+)<`)

// enrollAnswer answers the enrollment page (reading its key) and sign-in
// code prompts (with the key it learnt).
func enrollAnswer(t *testing.T, ts *testserver.Server, learnt *string) func(*flow.Page) string {
	return func(p *flow.Page) string {
		if m := manualKey.FindStringSubmatch(p.Body); m != nil {
			*learnt = m[1]
		}
		if *learnt == "" {
			t.Fatalf("asked for a code before enrollment: %.300s", p.Body)
		}
		return totpAnswer(t, ts, *learnt)(p)
	}
}

func mfaLogin(t *testing.T, ts *testserver.Server, b *flow.Browser, cfg *oauth2.Config, user, pw string, opts ...oauth2.AuthCodeOption) *oauth2.Token {
	t.Helper()
	v := oauth2.GenerateVerifier()
	cb := ts.SignIn(b, cfg.AuthCodeURL("s", append(opts, oauth2.S256ChallengeOption(v))...), user, pw)
	if e := cb.Query().Get("error"); e != "" {
		t.Fatalf("authorization error %s: %s", e, cb.Query().Get("error_description"))
	}
	tok, err := cfg.Exchange(context.Background(), cb.Query().Get("code"), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	ts.RememberToken(tok)
	return tok
}

func TestMFASignInClaims(t *testing.T) {
	ts := testserver.Start(t)
	addCarol(t, ts)
	cfg := ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid", "offline_access")
	b := ts.Browser()
	b.OTP = totpAnswer(t, ts, carolTOTP)
	tok := mfaLogin(t, ts, b, cfg, carol, carolPW)
	_, c := verifyID(t, ts, testserver.WebClient, tok)
	for _, m := range []string{"pwd", "otp", "mfa"} {
		if !slices.Contains(c.AMR, m) {
			t.Errorf("amr %v lacks %s", c.AMR, m)
		}
	}
	if c.ACR != mfaACR {
		t.Errorf("acr = %q", c.ACR)
	}
	at := introspect(ts, tok.AccessToken)
	if !active(at) {
		t.Fatal("access token inactive")
	}
	// A password-only user gets amr [pwd] and the password acr.
	tok2 := webLogin(t, ts, testserver.Alice, testserver.AlicePW)
	_, c2 := verifyID(t, ts, testserver.WebClient, tok2)
	if !slices.Equal(c2.AMR, []string{"pwd"}) || c2.ACR != passwordAC {
		t.Errorf("password-only claims: amr %v acr %q", c2.AMR, c2.ACR)
	}
}

func TestMFAWrongAndReplayedCodes(t *testing.T) {
	ts := testserver.Start(t)
	addCarol(t, ts)
	cfg := ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid")
	b := ts.Browser()
	page, _, _ := b.Get(cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	page, _, _ = b.Submit(page.FormWith("password"), map[string]string{"username": carol, "password": carolPW}, "", "")
	form := page.FormWith("otp")
	if form == nil {
		t.Fatalf("no code prompt after the password: %.300s", page.Body)
	}
	if form.Inputs["otp"]["autocomplete"] != "one-time-code" {
		t.Errorf("otp input attributes %v", form.Inputs["otp"])
	}
	bad, _, _ := b.Submit(form, map[string]string{"otp": "000000"}, "", "")
	if bad == nil || bad.Status != 401 {
		t.Fatalf("wrong code accepted")
	}
	code, _ := totp.GenerateCode(carolTOTP, ts.Clock.Now())
	good, _, _ := b.Submit(form, map[string]string{"otp": code}, "", "")
	if good == nil || good.FormWith("decision") == nil {
		t.Fatal("right code did not lead to the consent page")
	}
	// The same code again (another browser, same password step) is refused.
	b2 := ts.Browser()
	p2, _, _ := b2.Get(cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	p2, _, _ = b2.Submit(p2.FormWith("password"), map[string]string{"username": carol, "password": carolPW}, "", "")
	again, _, _ := b2.Submit(p2.FormWith("otp"), map[string]string{"otp": code}, "", "")
	if again == nil || again.Status != 401 {
		t.Fatal("a TOTP code was accepted twice")
	}
}

// The seed case: an app that accepted passwords now requires MFA.
// Password-only families stop at their next refresh; MFA families go on;
// the password-only user is walked through enrollment at the next sign-in.
func TestPolicyChangeRequireMFA(t *testing.T) {
	ts := testserver.Start(t)
	addCarol(t, ts)
	cfg := ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid", "offline_access")
	alice := webLogin(t, ts, testserver.Alice, testserver.AlicePW)
	cb := ts.Browser()
	cb.OTP = totpAnswer(t, ts, carolTOTP)
	carolTok := mfaLogin(t, ts, cb, cfg, carol, carolPW)

	yes := true
	v, err := operator.UpdateClient(context.Background(), ts.Store, testserver.WebClient, operator.ClientUpdate{RequireMFA: &yes}, time.Now())
	if err != nil || v.PolicyVersion != 2 {
		t.Fatalf("update: %+v %v", v, err)
	}
	r := refreshWeb(ts, alice.RefreshToken)
	wantReason(t, r, oauth.ReasonPolicyChanged)
	if !strings.Contains(r.Str("error_description"), "sign-in") {
		t.Errorf("error_description does not tell the app to sign the user in again: %q", r.Str("error_description"))
	}
	mustRefresh(t, ts, carolTok.RefreshToken)

	// Alice signs in again: she is walked through enrollment, then the
	// flow continues to the app with an MFA sign-in.
	var learnt string
	ab := ts.Browser()
	ab.OTP = enrollAnswer(t, ts, &learnt)
	tok := mfaLogin(t, ts, ab, cfg, testserver.Alice, testserver.AlicePW)
	_, c := verifyID(t, ts, testserver.WebClient, tok)
	if c.ACR != mfaACR || !slices.Contains(c.AMR, "mfa") || learnt == "" {
		t.Fatalf("after enrollment: acr %q amr %v", c.ACR, c.AMR)
	}
	mustRefresh(t, ts, tok.RefreshToken)

	// prompt=none cannot do the interaction MFA needs.
	_, res, _ := ts.Browser().Get(cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "none")))
	if res == nil || res.Redirect.Query().Get("error") != "login_required" {
		t.Fatalf("prompt=none, signed out: %v", res)
	}
	// And back: switching the policy off lets password sign-ins through.
	no := false
	if _, err := operator.UpdateClient(context.Background(), ts.Store, testserver.WebClient, operator.ClientUpdate{RequireMFA: &no}, time.Now()); err != nil {
		t.Fatal(err)
	}
	webLogin(t, ts, testserver.Bob, testserver.BobPW)
}

func TestACRValuesStepUpAndPromptNone(t *testing.T) {
	ts := testserver.Start(t)
	addCarol(t, ts)
	cfg := ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid")
	b := ts.Browser()
	b.OTP = totpAnswer(t, ts, carolTOTP)
	mfaLogin(t, ts, b, cfg, carol, carolPW) // session with MFA
	// Signed in with MFA: prompt=none + acr_values=mfa succeeds silently.
	_, res, _ := b.Get(cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "none"), oauth2.SetAuthURLParam("acr_values", mfaACR)))
	if res == nil || res.Redirect.Query().Get("code") == "" {
		t.Fatalf("silent MFA re-auth: %v", res)
	}

	// Bob signs in with a password only; asking for acr mfa with
	// prompt=none → interaction_required (he has no second factor).
	bb := ts.Browser()
	mfaLogin(t, ts, bb, cfg, testserver.Bob, testserver.BobPW)
	_, res, _ = bb.Get(cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "none"), oauth2.SetAuthURLParam("acr_values", mfaACR)))
	if res == nil || res.Redirect.Query().Get("error") != "interaction_required" {
		t.Fatalf("prompt=none needing MFA: %v", res)
	}
	// prompt=none without consent for new scopes → consent_required.
	_, res, _ = bb.Get(ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid", "email").AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "none")))
	if res == nil || res.Redirect.Query().Get("error") != "consent_required" {
		t.Fatalf("prompt=none needing consent: %v", res)
	}
	// prompt=login shows the sign-in form although a session exists.
	page, _, _ := bb.Get(cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "login")))
	if page == nil || page.FormWith("password") == nil {
		t.Fatal("prompt=login did not ask for the password")
	}
	// max_age: an old session must sign in again; a fresh one need not.
	ts.Clock.Advance(10 * time.Minute)
	page, _, _ = bb.Get(cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("max_age", "300")))
	if page == nil || page.FormWith("password") == nil {
		t.Fatal("max_age exceeded did not ask for the password")
	}
	_, res, _ = bb.Get(cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("max_age", "3600")))
	if res == nil || res.Redirect.Query().Get("code") == "" {
		t.Fatalf("max_age satisfied: %v", res)
	}

	// Step-up: Bob enrols a factor elsewhere (here: directly in the store)
	// while his browser holds a password-only session; a request for acr
	// mfa asks for the code only, not the password again.
	codec, _ := mfa.NewCodec(ts.MasterKey)
	u, _ := ts.Store.GetUserByUsername(context.Background(), testserver.Bob)
	if _, err := ts.Store.UpdateUser(context.Background(), u.ID, func(u *store.User) error {
		u.TOTPSecret = codec.Seal(u.ID, &mfa.Factor{Secret: carolTOTP})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	v := oauth2.GenerateVerifier()
	page, _, _ = bb.Get(cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("acr_values", mfaACR)))
	if page == nil || page.FormWith("otp") == nil || page.FormWith("password") != nil {
		t.Fatalf("step-up did not ask for the code only: %+v", page)
	}
	code := totpAnswer(t, ts, carolTOTP)(page)
	_, res, _ = bb.Submit(page.FormWith("otp"), map[string]string{"otp": code}, "", "")
	if res == nil || res.Redirect.Query().Get("code") == "" {
		t.Fatalf("after step-up: %v", res)
	}
	tok, err := cfg.Exchange(context.Background(), res.Redirect.Query().Get("code"), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	ts.RememberToken(tok)
	if _, c := verifyID(t, ts, testserver.WebClient, tok); c.ACR != mfaACR {
		t.Errorf("acr after step-up: %q", c.ACR)
	}
}

func TestCredentialEpochs(t *testing.T) {
	ts := testserver.Start(t, testserver.WithConfig(func(c *config.Config) { c.RevokeOnMFAEnroll = true }))
	ctx := context.Background()
	fam := &family.Service{Store: ts.Store, Log: ts.Log, Now: time.Now}
	tok := webLogin(t, ts, testserver.Alice, testserver.AlicePW)
	other := ts.Login(ts.OAuth2Config(testserver.OtherClient, testserver.OtherSecret, "openid", "offline_access"), testserver.Alice, testserver.AlicePW)
	if _, err := operator.RevokeSessions(ctx, ts.Store, fam, testserver.Alice, time.Now()); err != nil {
		t.Fatal(err)
	}
	wantReason(t, refreshWeb(ts, tok.RefreshToken), oauth.ReasonCredentials)
	wantReason(t, ts.Refresh(other.RefreshToken, testserver.OtherClient, testserver.OtherSecret), oauth.ReasonCredentials)

	// Families born after the change work.
	tok = webLogin(t, ts, testserver.Alice, testserver.AlicePW)
	mustRefresh(t, ts, tok.RefreshToken)

	// Enrolling a second factor (trigger switched on here) ends them too.
	b := ts.Browser()
	var learnt string
	b.OTP = enrollAnswer(t, ts, &learnt)
	page, _, err := b.Get(ts.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Submit(page.FormWith("password"), map[string]string{"username": testserver.Alice, "password": testserver.AlicePW}, "", ""); err != nil {
		t.Fatal(err)
	}
	setup, _, err := b.Get(ts.URL + "/account/mfa/setup")
	if err != nil || setup.FormWith("otp") == nil {
		t.Fatalf("setup page: %v", err)
	}
	done, _, err := b.Submit(setup.FormWith("otp"), map[string]string{"otp": b.OTP(setup)}, "", "")
	if err != nil || done.Status != 200 || !strings.Contains(done.Body, "recovery-codes") {
		t.Fatalf("enrollment: %v %d", err, done.Status)
	}
	codes := regexp.MustCompile(`<li><code>([a-z2-7]{5}-[a-z2-7]{5})</code></li>`).FindAllStringSubmatch(done.Body, -1)
	if len(codes) != 10 {
		t.Fatalf("%d recovery codes shown", len(codes))
	}
	wantReason(t, refreshWeb(ts, tok.RefreshToken), oauth.ReasonCredentials)

	// A recovery code signs in once, and only once.
	useRecovery := func(code string) int {
		rb := ts.Browser()
		p, _, _ := rb.Get(ts.URL + "/login")
		p, _, _ = rb.Submit(p.FormWith("password"), map[string]string{"username": testserver.Alice, "password": testserver.AlicePW}, "", "")
		p2, res, _ := rb.Submit(p.FormWith("otp"), map[string]string{"otp": code}, "", "")
		if res != nil {
			return 303
		}
		return p2.Status
	}
	if st := useRecovery(codes[0][1]); st != 200 {
		// success lands on /account (200 after redirects)
		t.Fatalf("recovery code: %d", st)
	}
	if st := useRecovery(codes[0][1]); st != http.StatusUnauthorized {
		t.Fatalf("recovery code used twice: %d", st)
	}
}

func TestSignInThrottling(t *testing.T) {
	ts := testserver.Start(t, testserver.WithConfig(func(c *config.Config) { c.ThrottlePerAccount = 3 }))
	// A second instance on the same database shares the counters.
	ts2 := testserver.StartOn(t, ts.Store, testserver.WithoutSeed(), testserver.WithMasterKey(ts.MasterKey),
		testserver.WithConfig(func(c *config.Config) { c.ThrottlePerAccount = 3 }))
	try := func(srv *testserver.Server, user, pw string) *flow.Page {
		b := srv.Browser()
		p, _, _ := b.Get(srv.URL + "/login")
		p2, res, _ := b.Submit(p.FormWith("password"), map[string]string{"username": user, "password": pw}, "", "")
		if res != nil {
			t.Fatalf("redirected: %v", res.Redirect)
		}
		return p2
	}
	for i, srv := range []*testserver.Server{ts, ts2, ts} {
		if p := try(srv, testserver.Alice, "wrong password "+string(rune('a'+i))); p.Status != 401 {
			t.Fatalf("attempt %d: %d", i, p.Status)
		}
	}
	for _, srv := range []*testserver.Server{ts, ts2} {
		p := try(srv, testserver.Alice, testserver.AlicePW) // even the right password
		if p.Status != http.StatusTooManyRequests || !strings.Contains(p.Body, "Too many failed attempts") {
			t.Fatalf("after the limit: %d", p.Status)
		}
	}
	// Unknown accounts are throttled the same way (no enumeration).
	for range 3 {
		try(ts, "mallory", "whatever password")
	}
	if p := try(ts2, "mallory", "whatever password"); p.Status != http.StatusTooManyRequests {
		t.Fatalf("unknown account not throttled: %d", p.Status)
	}
	// The window passes.
	ts.Clock.Advance(16 * time.Minute)
	ts2.Clock.Advance(16 * time.Minute)
	b := ts.Browser()
	p, _, _ := b.Get(ts.URL + "/login")
	_, _, err := b.Submit(p.FormWith("password"), map[string]string{"username": testserver.Alice, "password": testserver.AlicePW}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	acct, _, _ := b.Get(ts.URL + "/account")
	if acct == nil || !strings.Contains(acct.Body, "Your account") {
		t.Fatal("sign-in after the window failed")
	}
}

// An operator resets a lost second factor: the user's families end, and
// the next sign-in needs the password only.
func TestOperatorResetMFA(t *testing.T) {
	ts := testserver.Start(t)
	addCarol(t, ts)
	cfg := ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid", "offline_access")
	b := ts.Browser()
	b.OTP = totpAnswer(t, ts, carolTOTP)
	tok := mfaLogin(t, ts, b, cfg, carol, carolPW)
	fam := &family.Service{Store: ts.Store, Log: ts.Log, Now: time.Now}
	n, err := operator.ResetMFA(context.Background(), ts.Store, fam, carol, true, time.Now())
	if err != nil || n != 1 {
		t.Fatalf("reset: %d %v", n, err)
	}
	wantReason(t, refreshWeb(ts, tok.RefreshToken), oauth.ReasonCredentials)
	if _, err := operator.ResetMFA(context.Background(), ts.Store, fam, carol, true, time.Now()); err == nil {
		t.Error("resetting a user without a factor succeeded")
	}
	// The old browser session is gone; a new sign-in asks for no code.
	nb := ts.Browser() // no OTP answer: a code prompt would fail the flow
	tok = mfaLogin(t, ts, nb, cfg, carol, carolPW)
	if _, c := verifyID(t, ts, testserver.WebClient, tok); c.ACR != passwordAC {
		t.Errorf("acr after reset: %q", c.ACR)
	}
}
