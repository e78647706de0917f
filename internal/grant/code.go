package grant

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/latchkey-dev/latchkey/internal/dpop"
	"github.com/latchkey-dev/latchkey/internal/family"
	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/secret"
	"github.com/latchkey-dev/latchkey/internal/store"
)

// errBadCode is the one answer for unknown, expired, used and mismatched
// codes, so the response reveals nothing about other clients' codes.
func errBadCode() *oauth.Error {
	return oauth.New(oauth.InvalidGrant, "The authorization code is invalid, expired, already used, or was issued to another client or redirect URI.")
}

// authorizationCode exchanges a code (RFC 6749 §4.1.3, OIDC Core §3.1.3.2).
func (h *Handler) authorizationCode(ctx context.Context, client *store.Client, form url.Values, proof *dpop.Proof) (*Response, error) {
	code := form.Get("code")
	if code == "" {
		return nil, oauth.New(oauth.InvalidRequest, "The code parameter is missing.")
	}
	if form.Get("redirect_uri") == "" {
		return nil, oauth.New(oauth.InvalidRequest, "The redirect_uri parameter is missing; send the one used in the authorization request.")
	}
	verifier := form.Get("code_verifier")
	if verifier != "" && !validVerifier(verifier) {
		return nil, oauth.New(oauth.InvalidRequest, "code_verifier must be 43 to 128 characters from [A-Za-z0-9-._~] (RFC 7636 §4.1).")
	}
	if len(code) > 256 {
		return nil, errBadCode()
	}
	now := h.now()
	ac, err := h.Store.RedeemAuthCode(ctx, secret.SHA256(code), now)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, errBadCode()
	case errors.Is(err, store.ErrAlreadyUsed):
		// RFC 6749 §4.1.2 / RFC 9700 §4.5: a replayed code revokes the
		// tokens issued from it. Only the client it was issued to can
		// trigger this, so another client cannot use it to sign users out.
		if ac.ClientID == client.ID {
			h.Families.Audit(ctx, &store.AuditEvent{Type: family.EventCodeReplayed, UserID: ac.UserID, ClientID: ac.ClientID, FamilyID: ac.FamilyID})
			if _, err := h.Families.End(ctx, store.FamilyFilter{ID: ac.FamilyID}, oauth.ReasonCodeReplayed, "authorization code presented twice"); err != nil {
				return nil, oauth.Wrap(err, "revoke family of replayed code")
			}
		}
		return nil, errBadCode()
	case err != nil:
		return nil, oauth.Wrap(err, "redeem code")
	}
	if ac.ClientID != client.ID || !now.Before(ac.ExpiresAt) {
		return nil, errBadCode()
	}
	// RFC 6749 §4.1.3: redirect_uri must be identical to the authorization request's.
	if form.Get("redirect_uri") != ac.RedirectURI {
		return nil, errBadCode()
	}
	// RFC 7636 §4.6; RFC 9700 §2.1.1: a verifier without a challenge is a
	// downgrade attempt and is refused too.
	switch {
	case ac.CodeChallenge == "" && verifier != "":
		return nil, oauth.New(oauth.InvalidGrant, "A code_verifier was sent but the authorization request had no code_challenge.")
	case ac.CodeChallenge != "" && verifier == "":
		return nil, oauth.New(oauth.InvalidGrant, "The code_verifier is missing (the authorization request used PKCE).")
	case ac.CodeChallenge != "" && !pkceMatches(ac.CodeChallenge, verifier):
		return nil, oauth.New(oauth.InvalidGrant, "The code_verifier does not match the code_challenge.")
	}
	// RFC 9449 §10: a code bound with dpop_jkt is exchanged only with a
	// proof from that key.
	if ac.DPoPJKT != "" && jkt(proof) != ac.DPoPJKT {
		if proof == nil {
			return nil, oauth.New(oauth.InvalidGrant, "The authorization request bound this code to a DPoP key (dpop_jkt): send a DPoP proof signed with that key.").WithReason(oauth.ReasonDPoPKeyRequired)
		}
		return nil, oauth.New(oauth.InvalidGrant, "The DPoP proof's key is not the one the authorization request bound this code to (dpop_jkt).").WithReason(oauth.ReasonDPoPKeyMismatch)
	}
	user, err := h.Store.GetUser(ctx, ac.UserID)
	if err != nil || user.Disabled {
		return nil, errBadCode().WithCause(err)
	}
	// The client's policy may have changed since the sign-in (e.g. it now
	// requires MFA): a code from a sign-in that no longer satisfies it is refused.
	if !SatisfiesPolicy(client, ac.AMR) {
		return nil, oauth.New(oauth.InvalidGrant, "The application now requires two-step verification; send the user through sign-in again.").WithReason(oauth.ReasonPolicyChanged)
	}
	scopes := ac.Scopes
	// OIDC Core §11: a refresh token only for offline_access that was
	// requested and consented to, and only to clients allowed the grant.
	offline := slices.Contains(scopes, oauth.ScopeOfflineAccess)
	if offline && !slices.Contains(client.GrantTypes, "refresh_token") {
		offline = false
		scopes = slices.DeleteFunc(slices.Clone(scopes), func(s string) bool { return s == oauth.ScopeOfflineAccess })
	}
	f := &store.Family{
		ID: ac.FamilyID, ClientID: client.ID, UserID: ac.UserID, Scopes: scopes, Offline: offline,
		AuthTime: ac.AuthTime, AMR: ac.AMR, ACR: ac.ACR, PolicyVersion: client.PolicyVersion,
		CredentialEpoch: user.CredentialEpoch, CreatedAt: now, LastUsedAt: now,
		// RFC 9449 §5: the family (so its refresh tokens) is bound to the
		// key of the exchange's proof, whatever the client type.
		DPoPJKT: jkt(proof),
	}
	if offline {
		idle, absolute := h.refreshLifetimes(client)
		// The absolute deadline is anchored at the original sign-in and
		// never moves on rotation.
		f.AbsoluteExpiresAt = ac.AuthTime.Add(absolute)
		f.IdleExpiresAt = minTime(now.Add(idle), f.AbsoluteExpiresAt)
		f.Generation, f.RotatedAt = 1, now
		if !now.Before(f.AbsoluteExpiresAt) {
			// The sign-in is already older than the absolute lifetime.
			return nil, oauth.New(oauth.InvalidGrant, "The sign-in behind this code is older than the refresh token lifetime allows; sign the user in again.")
		}
	}
	if err := h.Store.CreateFamily(ctx, f); err != nil {
		return nil, oauth.Wrap(err, "create family")
	}
	resp, err := h.mint(ctx, f, client, user, scopes, ac.Nonce, f.DPoPJKT, now)
	if err != nil {
		return nil, err
	}
	if offline {
		if resp, err = h.withRefresh(resp, f, f.Generation, now); err != nil {
			return nil, err
		}
	}
	h.Families.Audit(ctx, &store.AuditEvent{Type: family.EventIssued, UserID: f.UserID, ClientID: f.ClientID, FamilyID: f.ID, Detail: oauth.JoinScope(scopes)})
	return resp, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func validVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	return strings.IndexFunc(v, func(c rune) bool {
		return !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune("-._~", c))
	}) < 0
}

func pkceMatches(challenge, verifier string) bool {
	sum := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
}
