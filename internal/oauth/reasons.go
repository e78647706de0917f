package oauth

// Reason codes: why a family (and every token in it) ended, or why a refresh
// was refused. They are stable API: sent as "error_reason" beside
// invalid_grant, stored on the family, written to the audit log and to
// metrics. See docs/lifecycle.md.
const (
	ReasonReused           = "reused"            // an already-rotated refresh token was presented
	ReasonRevoked          = "revoked"           // revoked through the revocation endpoint
	ReasonConsentWithdrawn = "consent_withdrawn" // the user (or an operator) revoked the app's access
	ReasonExpiredIdle      = "expired_idle"      // not used within the idle lifetime
	ReasonExpiredAbsolute  = "expired_absolute"  // older than the absolute lifetime
	ReasonUserDisabled     = "user_disabled"
	ReasonClientDeleted    = "client_deleted"
	ReasonPolicyChanged    = "policy_changed"      // the client's authentication policy no longer satisfied
	ReasonCredentials      = "credentials_changed" // password / second factor changed, sessions revoked
	ReasonCodeReplayed     = "code_replayed"       // the authorization code was presented twice
	ReasonOperator         = "operator_revoked"    // an operator revoked it from the CLI or admin API
	ReasonWrongClient      = "wrong_client"        // refusal only: presented by another client (family not ended)
	ReasonUnknown          = "unknown_token"       // refusal only: not a token we issued
	ReasonDPoPKeyRequired  = "dpop_key_required"   // refusal only: the token is DPoP-bound and no proof was sent
	ReasonDPoPKeyMismatch  = "dpop_key_mismatch"   // refusal only: the proof's key is not the one the token is bound to
)
