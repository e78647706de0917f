// Package operator holds the operations behind the CLI (and, later, the admin
// API): creating and changing clients and users with full validation, so both
// front ends apply the same rules.
package operator

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"

	"github.com/latchkey-dev/latchkey/internal/dpop"
	"github.com/latchkey-dev/latchkey/internal/family"
	"github.com/latchkey-dev/latchkey/internal/keys"
	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/secret"
	"github.com/latchkey-dev/latchkey/internal/store"
)

// DefaultScopes are the scopes a client may request unless told otherwise.
var DefaultScopes = []string{oauth.ScopeOpenID, oauth.ScopeProfile, oauth.ScopeEmail, oauth.ScopeOfflineAccess}

// MinPassword is the shortest password accepted (NIST SP 800-63B §5.1.1).
const MinPassword = 8

// ClientSpec describes a client to create.
type ClientSpec struct {
	ID              string
	Name            string
	Secret          string // "" with Public=false: generate one
	Public          bool
	RedirectURIs    []string
	Scopes          []string // nil: DefaultScopes
	RefreshIdle     time.Duration
	RefreshAbsolute time.Duration
	ReuseReportOnly bool
	// RequireDPoP: token requests without a DPoP proof are refused.
	RequireDPoP bool
	// JWKS (a JSON Web Key Set of public keys) makes the client
	// authenticate with private_key_jwt instead of a secret.
	JWKS string
	// RequireMFA: sign-ins for this client need a second factor (the
	// admin API sets it at creation; the CLI with client update).
	RequireMFA bool
	// IDTokenAlg is the client's id_token_signed_response_alg: RS256,
	// ES256 or EdDSA; "" signs its ID tokens with the server's signing_alg.
	IDTokenAlg string
	// KeyAlgs are the algorithms the server has signing keys for
	// (config.KeyAlgorithms, keys.Manager.Algorithms); IDTokenAlg must be
	// one of them.
	KeyAlgs []string
}

// ClientView is what the CLI prints for a client.
type ClientView struct {
	ClientID        string   `json:"client_id"`
	ClientSecret    string   `json:"client_secret,omitempty"`
	Name            string   `json:"name,omitempty"`
	Public          bool     `json:"public"`
	AuthMethod      string   `json:"token_endpoint_auth_method"`
	RedirectURIs    []string `json:"redirect_uris"`
	GrantTypes      []string `json:"grant_types"`
	Scopes          []string `json:"scopes"`
	RefreshIdle     string   `json:"refresh_idle,omitempty"`
	RefreshAbsolute string   `json:"refresh_absolute,omitempty"`
	ReuseReportOnly bool     `json:"reuse_report_only"`
	RequireMFA      bool     `json:"require_mfa"`
	PolicyVersion   int      `json:"policy_version"`
	RequireDPoP     bool     `json:"require_dpop"`
	JWKSKeys        []string `json:"jwks_kids,omitempty"` // key ids (or thumbprints) of the registered keys
	// IDTokenAlg is absent when the client's ID tokens use signing_alg.
	IDTokenAlg string `json:"id_token_signed_response_alg,omitempty"`
	CreatedAt  string `json:"created_at"`
}

// View renders c (without any secret).
func View(c *store.Client) ClientView {
	v := ClientView{
		ClientID: c.ID, Name: c.Name, Public: c.Public, AuthMethod: "client_secret_basic",
		RedirectURIs: c.RedirectURIs, GrantTypes: c.GrantTypes, Scopes: c.Scopes,
		ReuseReportOnly: c.ReuseReportOnly, RequireMFA: c.RequireMFA, PolicyVersion: c.PolicyVersion,
		IDTokenAlg: c.IDTokenAlg, CreatedAt: c.CreatedAt.UTC().Format(time.RFC3339),
	}
	if c.Public {
		v.AuthMethod = "none"
	}
	v.RequireDPoP = c.RequireDPoP
	if c.JWKS != "" {
		v.AuthMethod = "private_key_jwt"
		if set, err := keys.ParseClientJWKS(c.JWKS); err == nil {
			for _, k := range set.Keys {
				id := k.KeyID
				if id == "" {
					id, _ = dpop.Thumbprint(&k)
				}
				v.JWKSKeys = append(v.JWKSKeys, id)
			}
		}
	}
	if c.RefreshIdle > 0 {
		v.RefreshIdle = c.RefreshIdle.String()
	}
	if c.RefreshAbsolute > 0 {
		v.RefreshAbsolute = c.RefreshAbsolute.String()
	}
	return v
}

// ValidateClientID checks an operator-chosen client id.
func ValidateClientID(id string) error {
	if id == "" || len(id) > 128 {
		return errors.New("client id must be 1 to 128 characters")
	}
	for _, r := range id {
		if !(r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("-._~", r))) {
			return fmt.Errorf("client id %q may contain only letters, digits and - . _ ~", id)
		}
	}
	return nil
}

// ValidateRedirectURI applies RFC 6749 §3.1.2 and RFC 9700 §2.1: absolute,
// no fragment; http only for loopback; other schemes for native apps.
func ValidateRedirectURI(s string) error {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || len(s) > 2048 {
		return fmt.Errorf("redirect URI %q must be an absolute URI", s)
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		return fmt.Errorf("redirect URI %q must not contain a fragment", s)
	}
	if u.User != nil {
		return fmt.Errorf("redirect URI %q must not contain user information", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("redirect URI %q has an invalid port", s)
		}
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		if u.Hostname() == "" { // not u.Host: "https://:443/cb" has a port but no host
			return fmt.Errorf("redirect URI %q has no host", s)
		}
	case "http":
		h := strings.ToLower(u.Hostname())
		if h != "localhost" && h != "127.0.0.1" && h != "::1" && !strings.HasSuffix(h, ".localhost") {
			return fmt.Errorf("redirect URI %q must use https (http is allowed only for localhost)", s)
		}
	case "javascript", "data", "file", "vbscript", "mailto", "ftp", "ws", "wss", "blob", "about":
		return fmt.Errorf("redirect URI %q uses a forbidden scheme", s)
	}
	return nil
}

func validateScopes(scopes []string) error {
	if len(scopes) == 0 {
		return errors.New("at least one scope is required")
	}
	for _, s := range scopes {
		if !oauth.ValidScopeToken(s) {
			return fmt.Errorf("invalid scope %q", s)
		}
	}
	return nil
}

// ValidateIDTokenAlg checks a client's id_token_signed_response_alg: ""
// (the server's signing_alg), or an algorithm Latchkey signs with and the
// server has keys for (keyAlgs).
func ValidateIDTokenAlg(alg string, keyAlgs []string) error {
	switch {
	case alg == "" || slices.Contains(keyAlgs, alg):
		return nil
	case !slices.Contains(keys.Algorithms, jose.SignatureAlgorithm(alg)):
		return fmt.Errorf("ID token algorithm %q must be RS256, ES256 or EdDSA", alg)
	}
	has := "none"
	if len(keyAlgs) > 0 {
		has = strings.Join(keyAlgs, ", ")
	}
	return fmt.Errorf("ID token algorithm %s: the server has no %s signing keys (only %s); add it to id_token_algs (LATCHKEY_ID_TOKEN_ALGS) and restart the servers first",
		alg, alg, has)
}

func validateLifetimes(idle, absolute time.Duration) error {
	if idle < 0 || absolute < 0 {
		return errors.New("refresh lifetimes must not be negative")
	}
	if idle > 0 && absolute > 0 && idle > absolute {
		return errors.New("--refresh-idle must not exceed --refresh-absolute")
	}
	return nil
}

// CreateClient validates spec and stores the client. It returns the client
// view, including the secret when one was generated.
func CreateClient(ctx context.Context, st store.Store, spec ClientSpec, now time.Time) (ClientView, error) {
	var errs []error
	if err := ValidateClientID(spec.ID); err != nil {
		errs = append(errs, err)
	}
	if spec.Public && spec.Secret != "" {
		errs = append(errs, errors.New("a public client has no secret: use either --public or --secret"))
	}
	if spec.JWKS != "" {
		if spec.Public || spec.Secret != "" {
			errs = append(errs, errors.New("a client with a JWKS authenticates with private_key_jwt: it is neither --public nor has a --secret"))
		}
		if _, err := keys.ParseClientJWKS(spec.JWKS); err != nil {
			errs = append(errs, err)
		}
	}
	if len(spec.RedirectURIs) == 0 {
		errs = append(errs, errors.New("at least one --redirect-uri is required"))
	}
	for _, u := range spec.RedirectURIs {
		if err := ValidateRedirectURI(u); err != nil {
			errs = append(errs, err)
		}
	}
	if spec.Scopes == nil {
		spec.Scopes = DefaultScopes
	}
	if err := validateScopes(spec.Scopes); err != nil {
		errs = append(errs, err)
	}
	if err := validateLifetimes(spec.RefreshIdle, spec.RefreshAbsolute); err != nil {
		errs = append(errs, err)
	}
	if len(spec.Name) > 200 {
		errs = append(errs, errors.New("name must be at most 200 characters"))
	}
	if err := ValidateIDTokenAlg(spec.IDTokenAlg, spec.KeyAlgs); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return ClientView{}, invalid(errors.Join(errs...))
	}
	generated := ""
	c := &store.Client{
		ID: spec.ID, Name: spec.Name, Public: spec.Public, RedirectURIs: spec.RedirectURIs,
		GrantTypes: []string{"authorization_code", "refresh_token"}, Scopes: spec.Scopes,
		RefreshIdle: spec.RefreshIdle, RefreshAbsolute: spec.RefreshAbsolute, ReuseReportOnly: spec.ReuseReportOnly,
		PolicyVersion: 1, CreatedAt: now, UpdatedAt: now, RequireDPoP: spec.RequireDPoP, JWKS: spec.JWKS,
		RequireMFA: spec.RequireMFA, IDTokenAlg: spec.IDTokenAlg,
	}
	if !spec.Public && spec.JWKS == "" {
		sec := spec.Secret
		if sec == "" {
			sec = secret.NewClientSecret()
			generated = sec
		}
		h, err := secret.HashClientSecret(sec)
		if err != nil {
			return ClientView{}, err
		}
		c.SecretHash = h
	}
	if err := st.CreateClient(ctx, c); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return ClientView{}, conflict("a client with id %q already exists", spec.ID)
		}
		return ClientView{}, err
	}
	v := View(c)
	v.ClientSecret = generated
	return v, nil
}

// ClientUpdate lists changes; nil fields are left alone.
type ClientUpdate struct {
	Name            *string
	RedirectURIs    []string
	Scopes          []string
	RefreshIdle     *time.Duration
	RefreshAbsolute *time.Duration
	ReuseReportOnly *bool
	RequireMFA      *bool
	RequireDPoP     *bool
	// JWKS replaces the private_key_jwt key set of a client that has one
	// (key rotation); it cannot turn a secret or public client into one.
	JWKS *string
	// IDTokenAlg sets id_token_signed_response_alg ("": back to the
	// server's signing_alg); it must be one of KeyAlgs.
	IDTokenAlg *string
	KeyAlgs    []string
}

// UpdateClient applies u. A change of authentication policy bumps the
// client's policy version.
func UpdateClient(ctx context.Context, st store.Store, id string, u ClientUpdate, now time.Time) (ClientView, error) {
	if u.RedirectURIs != nil && len(u.RedirectURIs) == 0 {
		return ClientView{}, invalid(errors.New("at least one --redirect-uri is required"))
	}
	for _, r := range u.RedirectURIs {
		if err := ValidateRedirectURI(r); err != nil {
			return ClientView{}, invalid(err)
		}
	}
	if u.Scopes != nil {
		if err := validateScopes(u.Scopes); err != nil {
			return ClientView{}, invalid(err)
		}
	}
	if u.Name != nil && len(*u.Name) > 200 {
		return ClientView{}, invalid(errors.New("name must be at most 200 characters"))
	}
	if u.JWKS != nil {
		if _, err := keys.ParseClientJWKS(*u.JWKS); err != nil {
			return ClientView{}, invalid(err)
		}
	}
	if u.IDTokenAlg != nil {
		if err := ValidateIDTokenAlg(*u.IDTokenAlg, u.KeyAlgs); err != nil {
			return ClientView{}, invalid(err)
		}
	}
	c, err := st.UpdateClient(ctx, id, func(c *store.Client) error {
		if u.Name != nil {
			c.Name = *u.Name
		}
		if u.RedirectURIs != nil {
			c.RedirectURIs = u.RedirectURIs
		}
		if u.Scopes != nil {
			c.Scopes = u.Scopes
		}
		if u.RefreshIdle != nil {
			c.RefreshIdle = *u.RefreshIdle
		}
		if u.RefreshAbsolute != nil {
			c.RefreshAbsolute = *u.RefreshAbsolute
		}
		if u.ReuseReportOnly != nil {
			c.ReuseReportOnly = *u.ReuseReportOnly
		}
		if u.RequireMFA != nil && *u.RequireMFA != c.RequireMFA {
			c.RequireMFA = *u.RequireMFA
			c.PolicyVersion++
		}
		if u.RequireDPoP != nil {
			c.RequireDPoP = *u.RequireDPoP
		}
		if u.JWKS != nil {
			if c.JWKS == "" {
				return invalid(errors.New("--jwks replaces the keys of a private_key_jwt client; this client authenticates otherwise (create a new client instead)"))
			}
			c.JWKS = *u.JWKS
		}
		if u.IDTokenAlg != nil {
			c.IDTokenAlg = *u.IDTokenAlg
		}
		c.UpdatedAt = now
		return invalid(validateLifetimes(c.RefreshIdle, c.RefreshAbsolute))
	})
	if errors.Is(err, store.ErrNotFound) {
		return ClientView{}, notFound("no client with id %q", id)
	}
	if err != nil {
		return ClientView{}, err
	}
	return View(c), nil
}

// DeleteClient ends the client's families and deletes it.
func DeleteClient(ctx context.Context, st store.Store, fam *family.Service, id string) error {
	if _, err := st.GetClient(ctx, id); errors.Is(err, store.ErrNotFound) {
		return notFound("no client with id %q", id)
	} else if err != nil {
		return err
	}
	if _, err := fam.End(ctx, store.FamilyFilter{ClientID: id}, oauth.ReasonClientDeleted, "client deleted"); err != nil {
		return err
	}
	return st.DeleteClient(ctx, id)
}

// UserSpec describes a user to create.
type UserSpec struct {
	Username string
	Password string
	Name     string
	Email    string
	// Factor, when set, returns the sealed second factor for the new
	// user's id (enrolling TOTP at creation).
	Factor func(userID string) []byte
}

// UserView is what the CLI prints for a user.
type UserView struct {
	ID        string `json:"id"`
	Username  string `json:"username"`
	Name      string `json:"name,omitempty"`
	Email     string `json:"email,omitempty"`
	Disabled  bool   `json:"disabled"`
	MFA       bool   `json:"mfa"`
	CreatedAt string `json:"created_at"`
}

// ViewUser renders u (without credentials).
func ViewUser(u *store.User) UserView {
	return UserView{ID: u.ID, Username: u.Username, Name: u.Name, Email: u.Email, Disabled: u.Disabled, MFA: u.TOTPSecret != nil, CreatedAt: u.CreatedAt.UTC().Format(time.RFC3339)}
}

// ValidateUsername checks a username: 1–64 printable characters, no spaces.
func ValidateUsername(s string) error {
	if s == "" || len(s) > 64 {
		return errors.New("username must be 1 to 64 characters")
	}
	for _, r := range s {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return fmt.Errorf("username %q must not contain spaces or control characters", s)
		}
	}
	return nil
}

// ValidatePassword checks a new password.
func ValidatePassword(pw string) error {
	if len([]rune(pw)) < MinPassword {
		return fmt.Errorf("password must be at least %d characters", MinPassword)
	}
	if len(pw) > secret.MaxSecret {
		return fmt.Errorf("password must be at most %d bytes", secret.MaxSecret)
	}
	return nil
}

// CreateUser validates spec and stores the user.
func CreateUser(ctx context.Context, st store.Store, spec UserSpec, now time.Time) (UserView, error) {
	if err := errors.Join(ValidateUsername(spec.Username), ValidatePassword(spec.Password)); err != nil {
		return UserView{}, invalid(err)
	}
	if spec.Email != "" && (!strings.Contains(spec.Email, "@") || len(spec.Email) > 254) {
		return UserView{}, invalid(fmt.Errorf("email %q is not valid", spec.Email))
	}
	h, err := secret.HashPassword(spec.Password, secret.DefaultArgon2)
	if err != nil {
		return UserView{}, err
	}
	u := &store.User{ID: uuid.NewString(), Username: spec.Username, PasswordHash: h, Name: spec.Name, Email: spec.Email, CreatedAt: now, UpdatedAt: now}
	if spec.Factor != nil {
		u.TOTPSecret = spec.Factor(u.ID)
	}
	if err := st.CreateUser(ctx, u); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return UserView{}, conflict("a user named %q already exists", spec.Username)
		}
		return UserView{}, err
	}
	return ViewUser(u), nil
}
