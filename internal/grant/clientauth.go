package grant

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/secret"
	"github.com/latchkey-dev/latchkey/internal/store"
)

const maxClientIDLen = 256

// invalidClient is RFC 6749 §5.2's invalid_client: 401 with a Basic
// challenge. The description never says whether the client exists.
func invalidClient(desc string) *oauth.Error {
	return &oauth.Error{Code: oauth.InvalidClient, Description: desc, WWWAuthenticate: `Basic realm="latchkey", charset="UTF-8"`}
}

// AuthenticateClient authenticates the client of a token, revocation or
// introspection request: client_secret_basic, client_secret_post, or none
// for public clients (RFC 6749 §2.3.1, §3.2.1). A request must use exactly
// one method.
func AuthenticateClient(ctx context.Context, st store.Store, r *http.Request, form url.Values) (*store.Client, error) {
	id, sec, basic := r.BasicAuth()
	if basic {
		if form.Has("client_secret") {
			return nil, oauth.New(oauth.InvalidRequest, "Use one client authentication method: HTTP Basic or client_secret in the body, not both.")
		}
		// RFC 6749 §2.3.1: the credentials are form-urlencoded before Basic.
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		sec, err2 = url.QueryUnescape(sec)
		if err1 != nil || err2 != nil {
			return nil, invalidClient("The HTTP Basic credentials are not correctly encoded.")
		}
		if fid := form.Get("client_id"); fid != "" && fid != id {
			return nil, oauth.New(oauth.InvalidRequest, "client_id in the body does not match the authenticated client.")
		}
	} else {
		id, sec = form.Get("client_id"), form.Get("client_secret")
	}
	if id == "" {
		return nil, invalidClient("Client authentication is required: send client_id (and client_secret for confidential clients).")
	}
	if len(id) > maxClientIDLen || len(sec) > secret.MaxSecret {
		return nil, invalidClient("Client authentication failed.")
	}
	c, err := st.GetClient(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		if sec != "" {
			secret.BurnPasswordCheck(sec)
		}
		return nil, invalidClient("Client authentication failed.")
	}
	if err != nil {
		return nil, oauth.Wrap(err, "load client")
	}
	switch {
	case c.Public && (basic || sec != ""):
		return nil, invalidClient("This is a public client: it must not send a client secret.")
	case c.Public:
		return c, nil
	case sec == "":
		return nil, invalidClient("This client must authenticate with its client secret.")
	case !secret.VerifyClientSecret(c.SecretHash, sec):
		return nil, invalidClient("Client authentication failed.")
	}
	return c, nil
}
