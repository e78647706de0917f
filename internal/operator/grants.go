package operator

import (
	"context"
	"errors"
	"time"

	"github.com/latchkey-dev/latchkey/internal/family"
	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/secret"
	"github.com/latchkey-dev/latchkey/internal/store"
)

// Grant is one application a user has authorized: the consent and what is
// alive under it. The account page and `latchkey grant list` show it.
type Grant struct {
	ClientID        string    `json:"client_id"`
	ClientName      string    `json:"client_name"`
	Scopes          []string  `json:"scopes"`
	FirstAuthorized time.Time `json:"first_authorized"`
	LastUsed        time.Time `json:"last_used,omitzero"`
	Offline         bool      `json:"offline_access"`
	LiveFamilies    int       `json:"live_refresh_families"`
}

// Grants lists the applications a user has authorized.
func Grants(ctx context.Context, st store.Store, userID string, now time.Time) ([]Grant, error) {
	consents, err := st.ListConsents(ctx, userID)
	if err != nil {
		return nil, err
	}
	fams, err := st.ListFamilies(ctx, store.FamilyFilter{UserID: userID})
	if err != nil {
		return nil, err
	}
	out := make([]Grant, 0, len(consents))
	for _, c := range consents {
		g := Grant{ClientID: c.ClientID, ClientName: c.ClientID, Scopes: c.Scopes, FirstAuthorized: c.CreatedAt}
		if cl, err := st.GetClient(ctx, c.ClientID); err == nil && cl.Name != "" {
			g.ClientName = cl.Name
		}
		for _, f := range fams {
			if f.ClientID != c.ClientID {
				continue
			}
			if f.LastUsedAt.After(g.LastUsed) {
				g.LastUsed = f.LastUsedAt
			}
			if f.Offline && f.RevokedAt.IsZero() && now.Before(f.IdleExpiresAt) && now.Before(f.AbsoluteExpiresAt) {
				g.Offline = true
				g.LiveFamilies++
			}
		}
		out = append(out, g)
	}
	return out, nil
}

// RevokeGrant withdraws a user's consent for a client: every family of that
// user and client ends (consent_withdrawn) and the consent is forgotten, so
// the next sign-in asks again.
func RevokeGrant(ctx context.Context, st store.Store, fam *family.Service, userID, clientID, detail string) error {
	// End first: if deleting the consent failed after, the families are
	// still dead, which is the safe half.
	if _, err := fam.End(ctx, store.FamilyFilter{UserID: userID, ClientID: clientID}, oauth.ReasonConsentWithdrawn, detail); err != nil {
		return err
	}
	if err := st.DeleteConsent(ctx, userID, clientID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	fam.Audit(ctx, &store.AuditEvent{Type: family.EventConsentEnded, UserID: userID, ClientID: clientID, Reason: oauth.ReasonConsentWithdrawn, Detail: detail})
	return nil
}

// UserByName loads a user by username with a friendly error.
func UserByName(ctx context.Context, st store.Store, username string) (*store.User, error) {
	u, err := st.GetUserByUsername(ctx, username)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("no user named %q", username)
	}
	return u, err
}

// SetDisabled disables (ending every family of the user, user_disabled) or
// re-enables a user.
func SetDisabled(ctx context.Context, st store.Store, fam *family.Service, username string, disabled bool, now time.Time) error {
	u, err := UserByName(ctx, st, username)
	if err != nil {
		return err
	}
	if _, err := st.UpdateUser(ctx, u.ID, func(u *store.User) error { u.Disabled, u.UpdatedAt = disabled, now; return nil }); err != nil {
		return err
	}
	if disabled {
		if err := st.DeleteUserSessions(ctx, u.ID); err != nil {
			return err
		}
		_, err = fam.End(ctx, store.FamilyFilter{UserID: u.ID}, oauth.ReasonUserDisabled, "user disabled by an operator")
	}
	return err
}

// RevokeTokens ends every family of a user (optionally only for one client)
// on an operator's request.
func RevokeTokens(ctx context.Context, st store.Store, fam *family.Service, username, clientID string) (int, error) {
	u, err := UserByName(ctx, st, username)
	if err != nil {
		return 0, err
	}
	ids, err := fam.End(ctx, store.FamilyFilter{UserID: u.ID, ClientID: clientID}, oauth.ReasonOperator, "revoked by an operator")
	return len(ids), err
}

// SetPassword changes a user's password. When endFamilies is set (the
// revoke_on_password_change trigger), it bumps the credential epoch and ends
// every family of the user (credentials_changed): whoever held the old
// password may hold tokens too.
func SetPassword(ctx context.Context, st store.Store, fam *family.Service, username, password string, endFamilies bool, now time.Time) (int, error) {
	if err := ValidatePassword(password); err != nil {
		return 0, invalid(err)
	}
	u, err := UserByName(ctx, st, username)
	if err != nil {
		return 0, err
	}
	h, err := secret.HashPassword(password, secret.DefaultArgon2)
	if err != nil {
		return 0, err
	}
	return changeCredentials(ctx, st, fam, u.ID, func(u *store.User) { u.PasswordHash = h }, endFamilies, "password changed", now)
}

// changeCredentials applies change to the user and, when endAll is set (a
// credential-change trigger is on), bumps the credential epoch in the same
// update, signs the user out of every browser and ends every family
// (credentials_changed). It returns how many families ended.
func changeCredentials(ctx context.Context, st store.Store, fam *family.Service, userID string, change func(*store.User), endAll bool, detail string, now time.Time) (int, error) {
	if _, err := st.UpdateUser(ctx, userID, func(u *store.User) error {
		change(u)
		u.UpdatedAt = now
		if endAll {
			u.CredentialEpoch++
		}
		return nil
	}); err != nil {
		return 0, err
	}
	if !endAll {
		return 0, nil
	}
	if err := st.DeleteUserSessions(ctx, userID); err != nil {
		return 0, err
	}
	ids, err := fam.End(ctx, store.FamilyFilter{UserID: userID}, oauth.ReasonCredentials, detail)
	return len(ids), err
}

// EndForCredentials ends every family of a user after a credential change
// (credentials_changed).
func EndForCredentials(ctx context.Context, fam *family.Service, userID, detail string) error {
	_, err := fam.End(ctx, store.FamilyFilter{UserID: userID}, oauth.ReasonCredentials, detail)
	return err
}

// RevokeSessions is `latchkey user revoke-sessions`: it bumps the user's
// credential epoch, signs the user out of every browser and ends every
// family (credentials_changed), so every app must sign the user in again.
func RevokeSessions(ctx context.Context, st store.Store, fam *family.Service, username string, now time.Time) (int, error) {
	u, err := UserByName(ctx, st, username)
	if err != nil {
		return 0, err
	}
	return changeCredentials(ctx, st, fam, u.ID, func(*store.User) {}, true, "sessions revoked by an operator", now)
}

// ResetMFA removes a user's second factor (a user who lost both the phone
// and the recovery codes). With endFamilies (the revoke_on_mfa_remove
// trigger) it also bumps the credential epoch, signs the user out of every
// browser and ends every family (credentials_changed). The user can enrol
// again from the account page; clients requiring MFA walk them through it.
func ResetMFA(ctx context.Context, st store.Store, fam *family.Service, username string, endFamilies bool, now time.Time) (int, error) {
	u, err := UserByName(ctx, st, username)
	if err != nil {
		return 0, err
	}
	if u.TOTPSecret == nil {
		return 0, conflict("user %q has no second factor", username)
	}
	return changeCredentials(ctx, st, fam, u.ID, func(u *store.User) { u.TOTPSecret = nil }, endFamilies, "second factor reset by an operator", now)
}
