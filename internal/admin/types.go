package admin

import (
	"github.com/latchkey-dev/latchkey/internal/keys"
	"github.com/latchkey-dev/latchkey/internal/operator"
)

// Request and response bodies, shared by the handlers and the Client. The
// records themselves are the operator package's views, exactly what the
// CLI prints.

// ClientCreate is the body of POST /v1/clients. Durations are Go durations
// or whole days ("720h", "30d").
type ClientCreate struct {
	ClientID        string   `json:"client_id"`
	Name            string   `json:"name,omitempty"`
	ClientSecret    string   `json:"client_secret,omitempty"`
	Public          bool     `json:"public,omitempty"`
	RedirectURIs    []string `json:"redirect_uris"`
	Scopes          []string `json:"scopes,omitempty"`
	RefreshIdle     string   `json:"refresh_idle,omitempty"`
	RefreshAbsolute string   `json:"refresh_absolute,omitempty"`
	ReuseReportOnly bool     `json:"reuse_report_only,omitempty"`
	RequireMFA      bool     `json:"require_mfa,omitempty"`
	RequireDPoP     bool     `json:"require_dpop,omitempty"`
	JWKS            string   `json:"jwks,omitempty"`
	// IDTokenAlg is the client's ID token algorithm (RS256, ES256, EdDSA);
	// absent: the server's signing_alg.
	IDTokenAlg string `json:"id_token_signed_response_alg,omitempty"`
}

// ClientUpdate is the body of PATCH /v1/clients/{id}: absent fields are
// left alone. A lifetime of "0s" goes back to the server default.
type ClientUpdate struct {
	Name            *string   `json:"name,omitempty"`
	RedirectURIs    *[]string `json:"redirect_uris,omitempty"`
	Scopes          *[]string `json:"scopes,omitempty"`
	RefreshIdle     *string   `json:"refresh_idle,omitempty"`
	RefreshAbsolute *string   `json:"refresh_absolute,omitempty"`
	ReuseReportOnly *bool     `json:"reuse_report_only,omitempty"`
	RequireMFA      *bool     `json:"require_mfa,omitempty"`
	RequireDPoP     *bool     `json:"require_dpop,omitempty"`
	JWKS            *string   `json:"jwks,omitempty"`
	// IDTokenAlg "" goes back to the server's signing_alg.
	IDTokenAlg *string `json:"id_token_signed_response_alg,omitempty"`
}

// UserCreate is the body of POST /v1/users.
type UserCreate struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Name     string `json:"name,omitempty"`
	Email    string `json:"email,omitempty"`
}

// PasswordChange is the body of POST /v1/users/{username}/password.
// KeepSessions leaves the user's refresh tokens alive even when the
// server revokes them on a password change.
type PasswordChange struct {
	Password     string `json:"password"`
	KeepSessions bool   `json:"keep_sessions,omitempty"`
}

// FamiliesRevoke is the body of POST /v1/families/revoke: every family of
// a user (optionally only for one client), or of a client.
type FamiliesRevoke struct {
	Username string `json:"username,omitempty"`
	ClientID string `json:"client_id,omitempty"`
}

// KeysRotate is the body of POST /v1/keys/rotate.
type KeysRotate struct {
	// Force promotes the next key even if it was published for less than
	// keys.MinNextAge.
	Force bool `json:"force,omitempty"`
}

// Ended reports how many refresh-token families an operation ended.
type Ended struct {
	FamiliesEnded int `json:"families_ended"`
}

// FamilyRevoked is the answer to revoking one family.
type FamilyRevoked struct {
	Revoked bool `json:"revoked"` // false: it had already ended
}

// List envelopes.
type (
	ClientList struct {
		Clients []operator.ClientView `json:"clients"`
	}
	UserList struct {
		Users []operator.UserView `json:"users"`
	}
	GrantList struct {
		Grants []operator.Grant `json:"grants"`
	}
	FamilyList struct {
		Families []operator.FamilyView `json:"families"`
	}
	AuditList struct {
		Events []operator.AuditView `json:"events"`
	}
	KeyList struct {
		Keys []keys.KeyInfo `json:"keys"`
	}
)
