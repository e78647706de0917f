package grant

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/latchkey-dev/latchkey/internal/dpop"
	"github.com/latchkey-dev/latchkey/internal/family"
	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/store"
)

// refusalText explains each reason code to the app developer. Every refusal
// tells the app what to do next: send the user through sign-in again.
var refusalText = map[string]string{
	oauth.ReasonUnknown:          "The refresh token is invalid, or was not issued to this client.",
	oauth.ReasonReused:           "This refresh token was already used; as a precaution every token from this sign-in has been revoked.",
	oauth.ReasonRevoked:          "This refresh token has been revoked.",
	oauth.ReasonConsentWithdrawn: "The user withdrew this application's access.",
	oauth.ReasonExpiredIdle:      "This refresh token expired because it was not used for too long.",
	oauth.ReasonExpiredAbsolute:  "This refresh token reached its maximum lifetime.",
	oauth.ReasonUserDisabled:     "The user's account is disabled.",
	oauth.ReasonClientDeleted:    "The application was deleted.",
	oauth.ReasonPolicyChanged:    "The application's sign-in policy changed (it now requires two-step verification) and this sign-in no longer satisfies it.",
	oauth.ReasonCredentials:      "The user's credentials changed or their sessions were revoked.",
	oauth.ReasonCodeReplayed:     "The authorization code behind this token was used twice, so its tokens were revoked.",
	oauth.ReasonOperator:         "An administrator revoked this refresh token.",
}

// refused is the invalid_grant answer for reason (RFC 6749 §5.2), with the
// reason code in "error_reason".
func refused(reason string) *oauth.Error {
	text, ok := refusalText[reason]
	if !ok {
		text = "This refresh token is no longer valid."
	}
	return oauth.New(oauth.InvalidGrant, "%s Send the user through sign-in again.", text).WithReason(reason)
}

// SatisfiesPolicy reports whether an authentication (its amr values)
// satisfies the client's current policy.
func SatisfiesPolicy(c *store.Client, amr []string) bool {
	return !c.RequireMFA || slices.Contains(amr, oauth.AMRMFA)
}

// maxRotateAttempts bounds re-reads after losing a rotation race. Losing
// once is normal under concurrency (the re-read then sees the winner's
// generation and answers from the grace window); losing repeatedly would
// need several rotations to complete in between.
const maxRotateAttempts = 4

// refreshToken implements the refresh grant (RFC 6749 §6, OIDC Core §12,
// RFC 9700 §4.14.2) with rotation, reuse detection and a grace window.
// See docs/lifecycle.md.
func (h *Handler) refreshToken(ctx context.Context, client *store.Client, form url.Values, proof *dpop.Proof) (*Response, error) {
	raw := form.Get("refresh_token")
	if raw == "" {
		return nil, oauth.New(oauth.InvalidRequest, "The refresh_token parameter is missing.")
	}
	fid, gen, err := h.Refresh.Parse(raw)
	if err != nil {
		return nil, refused(oauth.ReasonUnknown)
	}
	requested := oauth.ParseScope(form.Get("scope"))
	for attempt := 0; attempt < maxRotateAttempts; attempt++ {
		// The family and its user in one read.
		f, user, err := h.Store.GetFamilyWithUser(ctx, fid)
		if errors.Is(err, store.ErrNotFound) {
			return nil, refused(oauth.ReasonUnknown)
		}
		if err != nil {
			return nil, oauth.Wrap(err, "load family")
		}
		audit := func(typ, reason string) {
			h.Families.Audit(ctx, &store.AuditEvent{Type: typ, UserID: f.UserID, ClientID: f.ClientID, FamilyID: f.ID, Reason: reason})
		}
		// A token of another client gets the same answer as an unknown one
		// (nothing is revealed), and does not end the owner's family.
		if f.ClientID != client.ID || !f.Offline || gen > f.Generation {
			audit(family.EventRefused, oauth.ReasonWrongClient)
			return nil, refused(oauth.ReasonUnknown)
		}
		// RFC 9449 §5: a DPoP-bound family is refreshed only with a proof
		// from its key. Checked before anything else about the family, so a
		// thief without the key learns nothing and ends nothing (not even
		// by presenting an old generation).
		if err := checkBinding(f.DPoPJKT, proof); err != nil {
			audit(family.EventRefused, err.Reason)
			return nil, err
		}
		if !f.RevokedAt.IsZero() {
			audit(family.EventRefused, f.RevokeReason)
			return nil, refused(f.RevokeReason)
		}
		// end ends the family for reason and refuses.
		end := func(reason, detail string) (*Response, error) {
			if _, err := h.Families.End(ctx, store.FamilyFilter{ID: f.ID}, reason, detail); err != nil {
				return nil, oauth.Wrap(err, "end family")
			}
			return nil, refused(reason)
		}
		now := h.now()
		if !now.Before(f.AbsoluteExpiresAt) {
			return end(oauth.ReasonExpiredAbsolute, "")
		}
		if user == nil || user.Disabled {
			return end(oauth.ReasonUserDisabled, "")
		}
		// Credential epochs: a password change, a second-factor change or
		// an operator's revoke-sessions ends the families born before it.
		if f.CredentialEpoch < user.CredentialEpoch {
			return end(oauth.ReasonCredentials, "family predates a credential change")
		}
		// The client's current authentication policy must be satisfied by
		// the authentication the family was born from.
		if !SatisfiesPolicy(client, f.AMR) {
			return end(oauth.ReasonPolicyChanged, fmt.Sprintf("policy version %d requires MFA; family born at version %d", client.PolicyVersion, f.PolicyVersion))
		}
		// RFC 6749 §6: the scope may narrow but never widen.
		scopes := f.Scopes
		if len(requested) > 0 {
			if !oauth.Subset(requested, f.Scopes) {
				return nil, oauth.New(oauth.InvalidScope, "The requested scope exceeds the scope originally granted.")
			}
			scopes = requested
		}
		switch {
		case gen == f.Generation:
			if !now.Before(f.IdleExpiresAt) {
				return end(oauth.ReasonExpiredIdle, "")
			}
			idle, _ := h.refreshLifetimes(client)
			next := minTime(now.Add(idle), f.AbsoluteExpiresAt)
			rotated := *f
			rotated.Generation, rotated.RotatedAt, rotated.LastUsedAt, rotated.IdleExpiresAt = gen+1, now, now, next
			// The tokens are signed before the rotation is written: nothing
			// in them depends on the write, a request that loses the race
			// below discards them unsent, and a request whose signing fails
			// leaves the family unrotated. The write is then the request's
			// last step but the response, so the responses of one group
			// commit go out together (docs/BENCHMARKS.md, tail latency).
			resp, err := h.answer(ctx, &rotated, client, user, scopes, jkt(proof), now)
			if err != nil {
				return nil, err
			}
			// The rotation and its audit event are one write (one commit).
			ev := h.Families.Stamp(&store.AuditEvent{Type: family.EventRotated, UserID: f.UserID, ClientID: f.ClientID, FamilyID: f.ID})
			err = h.Store.RotateFamilyAudited(ctx, f.ID, gen, now, next, ev)
			if errors.Is(err, store.ErrConflict) {
				continue // lost a race: re-read and decide again
			}
			if err != nil {
				return nil, oauth.Wrap(err, "rotate refresh token")
			}
			h.Families.Stored(ctx, ev)
			return resp, nil

		case gen == f.Generation-1 && now.Sub(f.RotatedAt) <= h.Life.RefreshGrace:
			// A retry after a lost response, or a concurrent refresh that
			// lost the race: answer with the same successor, so the family
			// stays one chain. Once the successor is used the family moves
			// on and this case no longer matches.
			audit(family.EventGraceReplay, "")
			return h.answer(ctx, f, client, user, scopes, jkt(proof), now)

		default: // an older generation, or the predecessor after the window
			if client.ReuseReportOnly {
				// Report-only: record what would have been revoked, revoke
				// nothing, and answer with the current generation.
				audit(family.EventReuseReported, oauth.ReasonReused)
				return h.answer(ctx, f, client, user, scopes, jkt(proof), now)
			}
			return end(oauth.ReasonReused, "an already-rotated refresh token was presented")
		}
	}
	return nil, oauth.New(oauth.TemporarilyUnavailable, "The refresh token is being used concurrently; retry the request.")
}

// checkBinding refuses a proof-less or other-key request for a token bound
// to the DPoP key thumbprint bound ("" when unbound): invalid_grant with a
// reason, the family left alone.
func checkBinding(bound string, proof *dpop.Proof) *oauth.Error {
	switch {
	case bound == "":
		return nil
	case proof == nil:
		return oauth.New(oauth.InvalidGrant, "This refresh token is bound to a DPoP key: send a DPoP proof (RFC 9449) signed with that key.").WithReason(oauth.ReasonDPoPKeyRequired)
	case proof.JKT != bound:
		return oauth.New(oauth.InvalidGrant, "This refresh token is bound to another DPoP key: sign the DPoP proof with the key it was issued to.").WithReason(oauth.ReasonDPoPKeyMismatch)
	}
	return nil
}

// answer mints the access (and ID) token and the family's current refresh
// token; jkt binds the access token to a DPoP key.
func (h *Handler) answer(ctx context.Context, f *store.Family, client *store.Client, user *store.User, scopes []string, jkt string, now time.Time) (*Response, error) {
	resp, err := h.mint(ctx, f, client, user, scopes, "", jkt, now)
	if err != nil {
		return nil, err
	}
	return h.withRefresh(resp, f, f.Generation, now)
}
