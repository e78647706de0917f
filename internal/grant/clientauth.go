package grant

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/secret"
	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/throttle"
)

const maxClientIDLen = 256

// invalidClient is RFC 6749 §5.2's invalid_client: 401 with a Basic
// challenge. The description never says whether the client exists.
func invalidClient(desc string) *oauth.Error {
	return &oauth.Error{Code: oauth.InvalidClient, Description: desc, WWWAuthenticate: `Basic realm="latchkey", charset="UTF-8"`}
}

// AuthenticateClient authenticates the client of a token, revocation or
// introspection request with client_secret_basic, client_secret_post, or
// none for public clients — not private_key_jwt, which needs the issuer
// (use ClientAuth). It does not throttle.
func AuthenticateClient(ctx context.Context, st store.Store, r *http.Request, form url.Values) (*store.Client, error) {
	return (&ClientAuth{Store: st}).Authenticate(ctx, r, form)
}

// ClientAuth authenticates the client of a token, revocation or
// introspection request: client_secret_basic, client_secret_post,
// private_key_jwt (RFC 7523 §2.2, OIDC Core §9), or none for public clients
// (RFC 6749 §2.3.1, §3.2.1). A request must use exactly one method.
type ClientAuth struct {
	Store store.Store
	// Issuer enables private_key_jwt: an assertion's aud must hold the
	// issuer or its token endpoint. Empty refuses assertions.
	Issuer string
	Now    func() time.Time
	// Throttle, when set, counts failed authentications per client id and
	// per address; over the limit, requests are refused with 429 before
	// any credential is checked.
	Throttle *throttle.Limiter
}

// credentials is what a request presents, before any check.
type credentials struct {
	id, secret string
	basic      bool
	assertion  string // private_key_jwt
}

// Authenticate returns the authenticated client.
func (a *ClientAuth) Authenticate(ctx context.Context, r *http.Request, form url.Values) (*store.Client, error) {
	cred, err := a.credentials(r, form)
	if err != nil {
		return nil, err
	}
	// Only a request presenting a credential (a secret or an assertion) can
	// guess one; public clients' requests skip the counters. Failures are
	// always counted, but the counters are read before the check only for
	// secrets shorter than secret.LongSecret: only a short presented secret
	// can match a short (guessable, argon2id-hashed) registered one, while
	// 256-bit secrets and signed assertions cannot be guessed — for them a
	// lockout would only let whoever knows a client id lock it out, and the
	// two reads would sit on every token request's hot path.
	throttled := a.Throttle != nil && (cred.secret != "" || cred.assertion != "")
	if throttled && cred.secret != "" && len(cred.secret) < secret.LongSecret {
		if wait := a.Throttle.Check(ctx, r, cred.id); wait > 0 {
			return nil, &oauth.Error{Code: oauth.InvalidClient, Status: http.StatusTooManyRequests, RetryAfter: wait,
				Description: "Too many failed client authentications; wait before trying again."}
		}
	}
	c, err := a.verify(ctx, cred)
	if err != nil && throttled && errors.Is(err, &oauth.Error{Code: oauth.InvalidClient}) {
		a.Throttle.Fail(ctx, r, cred.id)
	}
	return c, err
}

// credentials extracts the one authentication method the request uses.
func (a *ClientAuth) credentials(r *http.Request, form url.Values) (credentials, error) {
	id, sec, basic := r.BasicAuth()
	if form.Has("client_assertion") || form.Has("client_assertion_type") {
		if basic || form.Has("client_secret") {
			return credentials{}, oauth.New(oauth.InvalidRequest, "Use one client authentication method: a client assertion, HTTP Basic or client_secret, not several.")
		}
		return a.assertionCredentials(form)
	}
	if basic {
		if form.Has("client_secret") {
			return credentials{}, oauth.New(oauth.InvalidRequest, "Use one client authentication method: HTTP Basic or client_secret in the body, not both.")
		}
		// RFC 6749 §2.3.1: the credentials are form-urlencoded before Basic.
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		sec, err2 = url.QueryUnescape(sec)
		if err1 != nil || err2 != nil {
			return credentials{}, invalidClient("The HTTP Basic credentials are not correctly encoded.")
		}
		if fid := form.Get("client_id"); fid != "" && fid != id {
			return credentials{}, oauth.New(oauth.InvalidRequest, "client_id in the body does not match the authenticated client.")
		}
	} else {
		id, sec = form.Get("client_id"), form.Get("client_secret")
	}
	if id == "" {
		return credentials{}, invalidClient("Client authentication is required: send client_id (and client_secret for confidential clients).")
	}
	if len(id) > maxClientIDLen || len(sec) > secret.MaxSecret {
		return credentials{}, invalidClient("Client authentication failed.")
	}
	return credentials{id: id, secret: sec, basic: basic}, nil
}

// verify checks the credentials against the registered client.
func (a *ClientAuth) verify(ctx context.Context, cred credentials) (*store.Client, error) {
	c, err := a.Store.GetClient(ctx, cred.id)
	if errors.Is(err, store.ErrNotFound) {
		// Spend what checking a secret of this length would cost, so the
		// response time does not reveal whether the client id exists.
		if cred.secret != "" {
			secret.BurnClientSecretCheck(cred.secret)
		}
		return nil, invalidClient("Client authentication failed.")
	}
	if err != nil {
		return nil, oauth.Wrap(err, "load client")
	}
	if cred.assertion != "" {
		return a.verifyAssertion(ctx, c, cred.assertion)
	}
	switch {
	case c.Public && (cred.basic || cred.secret != ""):
		return nil, invalidClient("This is a public client: it must not send a client secret.")
	case c.Public:
		return c, nil
	case c.JWKS != "":
		// Registered for private_key_jwt only (OIDC Registration
		// token_endpoint_auth_method): its secret, if any, is not accepted.
		return nil, invalidClient("This client authenticates with private_key_jwt: send a signed client_assertion.")
	case cred.secret == "":
		return nil, invalidClient("This client must authenticate with its client secret.")
	case !secret.VerifyClientSecret(c.SecretHash, cred.secret):
		return nil, invalidClient("Client authentication failed.")
	}
	return c, nil
}
