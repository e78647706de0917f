// Package store defines Latchkey's storage interface and record types.
//
// The interface is shaped by the server's use cases, not by tables. Every
// backend (SQLite, PostgreSQL) passes the one conformance suite in
// internal/store/storetest. No state that another server instance needs lives
// in process memory: sessions, pending authorization requests, codes, consent,
// refresh-token families, signing keys and throttling counters are all here.
//
// Secrets never reach the store in usable form: client secrets and passwords
// are stored as hashes, session ids and authorization codes as SHA-256 hashes (base64url),
// and refresh tokens not at all (see internal/token: a refresh token is a MAC
// over its family id and generation, so the store keeps only the family row).
package store

import (
	"context"
	"errors"
	"time"
)

var (
	// ErrNotFound is returned when a record does not exist (or has expired
	// where the method says so).
	ErrNotFound = errors.New("store: not found")
	// ErrConflict is returned when a record already exists, or when a
	// compare-and-swap lost a race.
	ErrConflict = errors.New("store: conflict")
	// ErrAlreadyUsed is returned by RedeemAuthCode when the code was redeemed
	// before; the code record is returned alongside it so the caller can
	// revoke what the first redemption produced (RFC 6749 §4.1.2).
	ErrAlreadyUsed = errors.New("store: already used")
	// ErrUnavailable is in the chain of errors that mean the database could
	// not be reached or did not answer in time (connection refused or lost,
	// pool closed, deadline exceeded, server shutting down, contention that
	// outlived the retries) rather than that it refused the operation. The
	// operation may or may not have taken effect; retrying is the answer
	// (HTTP endpoints reply 503 temporarily_unavailable).
	ErrUnavailable = errors.New("store: database unavailable")
)

// Client is a registered application.
type Client struct {
	ID   string
	Name string
	// SecretHash is empty for public clients. Its format is owned by
	// internal/secret ("sha256$..." or "argon2id$...").
	SecretHash   string
	Public       bool
	RedirectURIs []string
	// GrantTypes the client may use: "authorization_code", "refresh_token".
	GrantTypes []string
	// Scopes the client may request.
	Scopes []string
	// RefreshIdle and RefreshAbsolute override the server-wide refresh token
	// lifetimes when non-zero.
	RefreshIdle     time.Duration
	RefreshAbsolute time.Duration
	// ReuseReportOnly: refresh-token reuse is logged, audited and counted
	// but nothing is revoked.
	ReuseReportOnly bool
	// RequireMFA is the client's authentication policy; PolicyVersion is
	// bumped whenever the policy changes.
	RequireMFA    bool
	PolicyVersion int
	// RequireDPoP: every token request of this client must carry a DPoP
	// proof (RFC 9449), so all its tokens are sender-constrained.
	RequireDPoP bool
	// JWKS is the client's public JSON Web Key Set (JSON) for
	// private_key_jwt authentication (RFC 7523); empty for other clients.
	// A client with a JWKS authenticates only with signed assertions.
	JWKS string
	// IDTokenAlg is the client's id_token_signed_response_alg (OIDC
	// Dynamic Client Registration §2): the JWS algorithm of its ID tokens.
	// Empty means the server's signing_alg.
	IDTokenAlg string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// User is a person who signs in.
type User struct {
	ID           string // the stable `sub`
	Username     string
	PasswordHash string
	Name         string
	Email        string
	Disabled     bool
	// TOTPSecret is encrypted with the master key; nil when not enrolled.
	TOTPSecret []byte
	// CredentialEpoch is bumped by credential changes that end older
	// families (password change, second factor change, revoke-sessions).
	CredentialEpoch int
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// Session is a browser sign-in. ID is the SHA-256 (base64url) of the cookie value.
type Session struct {
	ID        string
	UserID    string
	AuthTime  time.Time
	AMR       []string
	ACR       string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// AuthRequest is a validated /authorize request waiting for the user to sign
// in and consent. ID is random and appears in page URLs; it is not a bearer
// secret (the browser session and CSRF token are also required).
type AuthRequest struct {
	ID                  string
	ClientID            string
	RedirectURI         string
	State               string
	Nonce               string
	CodeChallenge       string
	CodeChallengeMethod string
	Scopes              []string
	Prompt              []string
	MaxAge              int // seconds; -1 when absent
	ACRValues           []string
	// DPoPJKT is the dpop_jkt parameter (RFC 9449 §10): the code will be
	// bound to this key thumbprint.
	DPoPJKT   string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// AuthCode is an authorization code. ID is the SHA-256 (base64url) of the code.
type AuthCode struct {
	ID            string
	ClientID      string
	UserID        string
	RedirectURI   string
	Nonce         string
	CodeChallenge string
	Scopes        []string
	AuthTime      time.Time
	AMR           []string
	ACR           string
	// FamilyID is chosen when the code is issued; the code exchange creates
	// the family with this id, so a replayed code can revoke it.
	FamilyID string
	// DPoPJKT binds the code to a DPoP key (RFC 9449 §10): the exchange
	// must carry a proof signed with that key.
	DPoPJKT   string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time // zero until redeemed
}

// Consent records the scopes a user granted a client.
type Consent struct {
	UserID    string
	ClientID  string
	Scopes    []string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Family is one authorization born at one code exchange. Access tokens carry
// its id; when it offers offline access, its refresh token is the MAC of
// (ID, Generation), so rotating is a compare-and-swap of Generation.
type Family struct {
	ID       string
	ClientID string
	UserID   string
	Scopes   []string
	// Offline is true when a refresh token was issued.
	Offline bool
	// Generation of the current refresh token; RotatedAt is when it was
	// issued (the start of the predecessor's grace window).
	Generation int64
	RotatedAt  time.Time
	// The authentication the family was born from.
	AuthTime        time.Time
	AMR             []string
	ACR             string
	PolicyVersion   int
	CredentialEpoch int
	// DPoPJKT is the RFC 9449 key thumbprint the family is bound to.
	DPoPJKT           string
	CreatedAt         time.Time
	LastUsedAt        time.Time
	IdleExpiresAt     time.Time // zero when not offline
	AbsoluteExpiresAt time.Time // zero when not offline
	RevokedAt         time.Time // zero while alive
	RevokeReason      string
}

// FamilyFilter selects families. Empty fields match everything, but at least
// one field must be set for RevokeFamilies.
type FamilyFilter struct {
	ID       string
	UserID   string
	ClientID string
	// LiveOnly restricts ListFamilies to families not revoked.
	LiveOnly bool
}

// SigningKey is a JOSE signing key. State moves next → active → retired.
type SigningKey struct {
	ID  string // kid
	Alg string
	// State is one of KeyNext, KeyActive, KeyRetired.
	State string
	// PrivateKey is the private JWK, encrypted with the master key.
	PrivateKey []byte
	// PublicKey is the public JWK (JSON).
	PublicKey []byte
	CreatedAt time.Time
	// ActivatedAt / RetiredAt are zero until the key enters that state.
	ActivatedAt time.Time
	RetiredAt   time.Time
}

// Signing key states.
const (
	KeyNext    = "next"
	KeyActive  = "active"
	KeyRetired = "retired"
)

// AuditEvent is one entry in the audit log. It never contains a token,
// secret, code or password.
type AuditEvent struct {
	ID       int64
	Time     time.Time
	Type     string // e.g. "refresh.rotated", "family.revoked"
	UserID   string
	ClientID string
	FamilyID string
	Reason   string
	Detail   string
}

// AuditFilter selects audit events, newest first.
type AuditFilter struct {
	UserID   string
	ClientID string
	FamilyID string
	Limit    int // 0 = 100
}

// Store is Latchkey's storage. All methods are safe for concurrent use, by
// many goroutines and by many processes on one database.
type Store interface {
	// Migrate brings the schema up to date. It is idempotent and safe to run
	// from several processes at once.
	Migrate(ctx context.Context) error
	Ping(ctx context.Context) error
	Close() error

	CreateClient(ctx context.Context, c *Client) error // ErrConflict if the id exists
	GetClient(ctx context.Context, id string) (*Client, error)
	ListClients(ctx context.Context) ([]*Client, error)
	// UpdateClient runs fn on the current record inside a transaction and
	// saves the result; fn's error aborts the update and is returned.
	UpdateClient(ctx context.Context, id string, fn func(*Client) error) (*Client, error)
	DeleteClient(ctx context.Context, id string) error

	CreateUser(ctx context.Context, u *User) error // ErrConflict if the username or id exists
	GetUser(ctx context.Context, id string) (*User, error)
	GetUserByUsername(ctx context.Context, username string) (*User, error)
	ListUsers(ctx context.Context) ([]*User, error)
	UpdateUser(ctx context.Context, id string, fn func(*User) error) (*User, error)

	CreateSession(ctx context.Context, s *Session) error
	// GetSession returns ErrNotFound for unknown or expired (at now) sessions.
	GetSession(ctx context.Context, id string, now time.Time) (*Session, error)
	DeleteSession(ctx context.Context, id string) error
	// DeleteUserSessions deletes every session of a user.
	DeleteUserSessions(ctx context.Context, userID string) error

	CreateAuthRequest(ctx context.Context, r *AuthRequest) error
	// GetAuthRequest returns ErrNotFound for unknown or expired requests.
	GetAuthRequest(ctx context.Context, id string, now time.Time) (*AuthRequest, error)
	DeleteAuthRequest(ctx context.Context, id string) error

	CreateAuthCode(ctx context.Context, c *AuthCode) error
	// RedeemAuthCode atomically marks the code used at now and returns it.
	// Unknown codes → ErrNotFound. A code used before → the record and
	// ErrAlreadyUsed. Expiry is the caller's check (so that an expired code
	// is still burned).
	RedeemAuthCode(ctx context.Context, id string, now time.Time) (*AuthCode, error)

	GetConsent(ctx context.Context, userID, clientID string) (*Consent, error)
	// PutConsent creates or replaces the consent (keeping CreatedAt of an
	// existing one).
	PutConsent(ctx context.Context, c *Consent) error
	DeleteConsent(ctx context.Context, userID, clientID string) error
	ListConsents(ctx context.Context, userID string) ([]*Consent, error)

	CreateFamily(ctx context.Context, f *Family) error
	GetFamily(ctx context.Context, id string) (*Family, error)
	// GetFamilyWithUser is GetFamily and GetUser of the family's user in
	// one read; the user is nil when it no longer exists.
	GetFamilyWithUser(ctx context.Context, id string) (*Family, *User, error)
	// RotateFamily advances the family from generation `from` to from+1,
	// setting RotatedAt and LastUsedAt to now and IdleExpiresAt to
	// idleExpiresAt — only if it is still at `from` and not revoked.
	// Otherwise ErrConflict (or ErrNotFound). It is the single
	// compare-and-swap that makes rotation race-safe across instances.
	RotateFamily(ctx context.Context, id string, from int64, now, idleExpiresAt time.Time) error
	// RotateFamilyAudited is RotateFamily that, when it rotates, also
	// appends ev (setting ev.ID) in the same commit: the rotation and its
	// audit event are stored together or not at all.
	RotateFamilyAudited(ctx context.Context, id string, from int64, now, idleExpiresAt time.Time, ev *AuditEvent) error
	// TouchFamily records use without rotating (e.g. an idempotent grace-window replay).
	TouchFamily(ctx context.Context, id string, now time.Time) error
	// RevokeFamilies marks every live family matching f revoked at now with
	// reason, and returns the ids it revoked. f must not be empty.
	RevokeFamilies(ctx context.Context, f FamilyFilter, reason string, now time.Time) ([]string, error)
	ListFamilies(ctx context.Context, f FamilyFilter) ([]*Family, error)

	// RevokeAccessToken records a revoked JWT id until the token's expiry.
	RevokeAccessToken(ctx context.Context, jti string, expiresAt time.Time) error
	AccessTokenRevoked(ctx context.Context, jti string) (bool, error)
	// GetAccessTokenState is what deciding on an access token needs, in one
	// read: its family, the family's user (nil when it no longer exists)
	// and whether the token's jti is revoked. ErrNotFound for an unknown
	// family.
	GetAccessTokenState(ctx context.Context, familyID, jti string) (*Family, *User, bool, error)

	CreateSigningKey(ctx context.Context, k *SigningKey) error
	ListSigningKeys(ctx context.Context) ([]*SigningKey, error)
	UpdateSigningKey(ctx context.Context, id string, fn func(*SigningKey) error) (*SigningKey, error)

	// HitThrottle counts one failure for key in a fixed window starting at
	// the first failure, atomically across instances, and returns the count
	// in the current window and when the window ends. GetThrottle reads it
	// (0 outside a window); ResetThrottle forgets it.
	HitThrottle(ctx context.Context, key string, now time.Time, window time.Duration) (int, time.Time, error)
	GetThrottle(ctx context.Context, key string, now time.Time) (int, time.Time, error)
	ResetThrottle(ctx context.Context, key string) error

	// UseJTI records a one-time value — the hash of a namespaced DPoP
	// proof or client assertion jti — until expiresAt, atomically across
	// instances. ErrAlreadyUsed if it is recorded and not expired at now.
	UseJTI(ctx context.Context, key string, expiresAt, now time.Time) error

	AppendAudit(ctx context.Context, e *AuditEvent) error
	// PruneAudit deletes up to batch events recorded before `before` (the
	// audit retention) and returns how many it deleted.
	PruneAudit(ctx context.Context, before time.Time, batch int) (int, error)
	ListAudit(ctx context.Context, f AuditFilter) ([]*AuditEvent, error)
	// ListAuditAfter returns up to limit events with an id above afterID,
	// in id order (the audit webhook walks the log with it). Ids increase
	// with every append but may have gaps, and on PostgreSQL a smaller id
	// can become visible after a larger one (concurrent appends commit in
	// any order).
	ListAuditAfter(ctx context.Context, afterID int64, limit int) ([]*AuditEvent, error)

	// ClaimCursor takes or renews, for owner, the lease on the named
	// delivery cursor until now+ttl — unless another owner's lease has not
	// expired — and returns the cursor's position and whether owner now
	// holds the lease. A cursor that does not exist is created at the
	// newest audit event id (delivery starts with the events appended
	// after it). Atomic across instances: of concurrent claimers one wins.
	ClaimCursor(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (pos int64, held bool, err error)
	// AdvanceCursor moves the named cursor to pos (never backwards) and
	// extends the lease to now+ttl, if owner still holds it; ErrConflict
	// when another owner took the lease.
	AdvanceCursor(ctx context.Context, name, owner string, pos int64, now time.Time, ttl time.Duration) error

	// CountLiveFamilies counts the families that can still be refreshed
	// at now: offline, not revoked, neither idle nor absolute expiry
	// reached (the live-families gauge).
	CountLiveFamilies(ctx context.Context, now time.Time) (int, error)

	// Sweep deletes up to batch expired or dead rows of each kind (expired
	// sessions, auth requests, codes, revoked-token entries, throttle windows, used
	// jtis; families dead
	// or expired for longer than keepDead) and returns how many it deleted.
	Sweep(ctx context.Context, now time.Time, keepDead time.Duration, batch int) (int, error)
}
