// Package oauth holds the protocol vocabulary shared by every endpoint: the
// OAuth error type (RFC 6749 §5.2, OIDC Core §3.1.2.6), scope helpers, and the
// stable reason codes that explain why a refresh token stopped working.
package oauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/latchkey-dev/latchkey/internal/store"
)

// Error codes from RFC 6749 §4.1.2.1 and §5.2, RFC 7009, OIDC Core §3.1.2.6
// and RFC 9449.
const (
	InvalidRequest          = "invalid_request"
	InvalidClient           = "invalid_client"
	InvalidGrant            = "invalid_grant"
	UnauthorizedClient      = "unauthorized_client"
	UnsupportedGrantType    = "unsupported_grant_type"
	InvalidScope            = "invalid_scope"
	AccessDenied            = "access_denied"
	UnsupportedResponseType = "unsupported_response_type"
	ServerError             = "server_error"
	TemporarilyUnavailable  = "temporarily_unavailable"
	UnsupportedTokenType    = "unsupported_token_type"
	InvalidToken            = "invalid_token"
	InsufficientScope       = "insufficient_scope"
	LoginRequired           = "login_required"
	ConsentRequired         = "consent_required"
	InteractionRequired     = "interaction_required"
	InvalidDPoPProof        = "invalid_dpop_proof"
	UseDPoPNonce            = "use_dpop_nonce" // RFC 9449 §8
)

// Error is an OAuth error response. Code and Description are sent to the
// client; Cause is only logged. Description must never contain a token,
// code, secret or password.
type Error struct {
	Code        string
	Description string
	// Reason is a stable, machine-readable code explaining an invalid_grant
	// for a refresh token (see reasons.go); sent as "error_reason".
	Reason string
	// Status is the HTTP status; 0 means the default for Code.
	Status int
	// NoRedirect marks authorization errors that must be shown to the user
	// instead of being redirected to the client (RFC 6749 §4.1.2.1: invalid
	// client_id or redirect_uri).
	NoRedirect bool
	// WWWAuthenticate, when set, is sent as the WWW-Authenticate header
	// (RFC 6749 §5.2: a failed HTTP Basic client authentication).
	WWWAuthenticate string
	// RetryAfter, when positive, is sent as the Retry-After header (in
	// whole seconds, rounded up) with a throttled request's 429.
	RetryAfter time.Duration
	Cause      error
}

// New returns an error with a formatted description.
func New(code, format string, args ...any) *Error {
	return &Error{Code: code, Description: fmt.Sprintf(format, args...)}
}

// Wrap returns a server_error hiding cause from the client — or, when the
// cause is the database being briefly unreachable (see Unavailable), a 503
// temporarily_unavailable telling the client to retry.
func Wrap(cause error, description string) *Error {
	if Unavailable(cause) {
		return &Error{Code: TemporarilyUnavailable, Description: UnavailableDescription,
			Cause: fmt.Errorf("%s: %w", description, cause)}
	}
	return &Error{Code: ServerError, Description: description, Cause: cause}
}

// UnavailableDescription is the error_description of a 503 caused by the
// database.
const UnavailableDescription = "The service is temporarily unavailable. Retry the request shortly."

// Unavailable reports whether err is transient trouble reaching the
// database (store.ErrUnavailable) or a deadline that ran out, which clients
// should retry, as opposed to a bug or a refused operation.
func Unavailable(err error) bool {
	return errors.Is(err, store.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}

func (e *Error) Error() string {
	s := e.Code
	if e.Description != "" {
		s += ": " + e.Description
	}
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Cause }

// Is matches another *Error by code, so errors.Is(err, &Error{Code: X}) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// WithStatus returns a copy with the HTTP status set.
func (e *Error) WithStatus(status int) *Error { c := *e; c.Status = status; return &c }

// WithReason returns a copy with the reason code set.
func (e *Error) WithReason(reason string) *Error { c := *e; c.Reason = reason; return &c }

// WithCause returns a copy with a logged-only cause.
func (e *Error) WithCause(err error) *Error { c := *e; c.Cause = err; return &c }

// HTTPStatus is the status to send: Status if set, else the RFC default.
func (e *Error) HTTPStatus() int {
	if e.Status != 0 {
		return e.Status
	}
	switch e.Code {
	case InvalidClient:
		return http.StatusUnauthorized
	case ServerError:
		return http.StatusInternalServerError
	case TemporarilyUnavailable:
		return http.StatusServiceUnavailable
	case InvalidToken:
		return http.StatusUnauthorized
	case InsufficientScope:
		return http.StatusForbidden
	default:
		return http.StatusBadRequest
	}
}

// LogValue keeps causes in logs and descriptions bounded.
func (e *Error) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("code", e.Code), slog.String("description", e.Description)}
	if e.Reason != "" {
		attrs = append(attrs, slog.String("reason", e.Reason))
	}
	if e.Cause != nil {
		attrs = append(attrs, slog.String("cause", e.Cause.Error()))
	}
	return slog.GroupValue(attrs...)
}

// As converts any error into an *Error; non-OAuth errors become server_error.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Wrap(err, "The server could not complete the request. Try again later.")
}
