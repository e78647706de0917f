package oauth

import (
	"slices"
	"strings"
)

// Scopes the server understands.
const (
	ScopeOpenID        = "openid"
	ScopeProfile       = "profile"
	ScopeEmail         = "email"
	ScopeOfflineAccess = "offline_access"
)

// ParseScope splits a space-delimited scope parameter (RFC 6749 §3.3),
// dropping duplicates and keeping order.
func ParseScope(s string) []string {
	var out []string
	for _, f := range strings.Fields(s) {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// JoinScope renders scopes for the wire.
func JoinScope(s []string) string { return strings.Join(s, " ") }

// Subset reports whether every scope in a is in b.
func Subset(a, b []string) bool {
	for _, s := range a {
		if !slices.Contains(b, s) {
			return false
		}
	}
	return true
}

// ValidScopeToken reports whether s is a valid scope-token (RFC 6749 §3.3:
// %x21 / %x23-5B / %x5D-7E).
func ValidScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// Authentication context class references (the `acr` claim) and methods
// (`amr`, RFC 8176).
const (
	ACRPassword = "urn:latchkey:acr:password" // a password alone
	ACRMFA      = "urn:latchkey:acr:mfa"      // a password and a second factor
	AMRPassword = "pwd"
	AMROTP      = "otp"
	AMRMFA      = "mfa"
)
