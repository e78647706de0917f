// Package admin is Latchkey's admin HTTP API (docs/admin-api.md): JSON
// endpoints for clients, users, grants, refresh-token families, the audit
// log and signing keys, plus /metrics, /healthz, /readyz and the OpenAPI
// document. It runs on its own listener (config admin_addr), never on the
// public router, and requires a bearer token on everything but the health
// checks and the OpenAPI document.
//
// Every operation calls the same internal/operator function as the CLI, so
// validation and side effects (families ended, audit events) are identical;
// this package only decodes requests, maps errors to RFC 9457 problem
// details and encodes responses.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/latchkey-dev/latchkey/internal/family"
	"github.com/latchkey-dev/latchkey/internal/httpx"
	"github.com/latchkey-dev/latchkey/internal/keys"
	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/profiling"
	"github.com/latchkey-dev/latchkey/internal/store"
)

// OpenAPI is the OpenAPI 3.1 description of every endpoint, served at
// /openapi.yaml and (converted) /openapi.json.
//
//go:embed openapi.yaml
var OpenAPI []byte

// MaxBodyBytes bounds every request body.
const MaxBodyBytes = 64 << 10

// Handler serves the admin API. Dependencies are set by main (or a test).
type Handler struct {
	Store    store.Store
	Families *family.Service
	// Keys lists and rotates the signing keys (the server's manager).
	Keys *keys.Manager
	// KeyRetention is how long a retired key stays published (for the key
	// listing; keys.Retention).
	KeyRetention time.Duration
	Log          *slog.Logger
	Now          func() time.Time
	// Token is the bearer token every API call must present; only its
	// SHA-256 is kept.
	Token string
	// RevokeOnPasswordChange is the server's revoke_on_password_change.
	RevokeOnPasswordChange bool
	// Metrics serves /metrics; Ready backs /readyz (nil: always ready).
	Metrics http.Handler
	Ready   func(ctx context.Context) error
	// Profiles serves the runtime's profiles under /debug/pprof/
	// (config admin_pprof; internal/profiling). Off when false: those
	// paths are then unknown endpoints.
	Profiles bool
}

// Handler returns the admin HTTP handler: request ids and access logs
// (httpx.Middleware), then the routes.
func (h *Handler) Handler() http.Handler {
	sum := sha256.Sum256([]byte(h.Token))
	auth := func(next handlerFunc) http.Handler { return h.handle(h.authorized(sum, next)) }
	open := func(next handlerFunc) http.Handler { return h.handle(next) }
	mux := http.NewServeMux()

	mux.Handle("GET /healthz", open(func(w http.ResponseWriter, r *http.Request) error {
		_, err := w.Write([]byte("ok\n"))
		return err
	}))
	mux.Handle("GET /readyz", open(h.ready))
	mux.Handle("GET /openapi.yaml", open(serveOpenAPIYAML))
	mux.Handle("GET /openapi.json", open(serveOpenAPIJSON))
	if h.Metrics != nil {
		mux.Handle("GET /metrics", auth(func(w http.ResponseWriter, r *http.Request) error { h.Metrics.ServeHTTP(w, r); return nil }))
	}

	if h.Profiles {
		mux.Handle("GET /debug/pprof/profile", auth(profile(profiling.CPU)))
		mux.Handle("GET /debug/pprof/trace", auth(profile(profiling.Trace)))
		mux.Handle("GET /debug/pprof/{name}", auth(profile(func(w http.ResponseWriter, r *http.Request) error {
			return profiling.Named(w, r.PathValue("name"))
		})))
	}

	mux.Handle("GET /v1/clients", auth(h.listClients))
	mux.Handle("POST /v1/clients", auth(h.createClient))
	mux.Handle("GET /v1/clients/{id}", auth(h.getClient))
	mux.Handle("PATCH /v1/clients/{id}", auth(h.updateClient))
	mux.Handle("DELETE /v1/clients/{id}", auth(h.deleteClient))

	mux.Handle("GET /v1/users", auth(h.listUsers))
	mux.Handle("POST /v1/users", auth(h.createUser))
	mux.Handle("GET /v1/users/{username}", auth(h.getUser))
	mux.Handle("POST /v1/users/{username}/disable", auth(h.setDisabled(true)))
	mux.Handle("POST /v1/users/{username}/enable", auth(h.setDisabled(false)))
	mux.Handle("POST /v1/users/{username}/password", auth(h.setPassword))
	mux.Handle("POST /v1/users/{username}/revoke-sessions", auth(h.revokeSessions))
	mux.Handle("GET /v1/users/{username}/grants", auth(h.listGrants))
	mux.Handle("DELETE /v1/users/{username}/grants/{client_id}", auth(h.revokeGrant))

	mux.Handle("GET /v1/families", auth(h.listFamilies))
	mux.Handle("POST /v1/families/revoke", auth(h.revokeFamilies))
	mux.Handle("POST /v1/families/{id}/revoke", auth(h.revokeFamily))

	mux.Handle("GET /v1/audit", auth(h.listAudit))

	mux.Handle("GET /v1/keys", auth(h.listKeys))
	mux.Handle("POST /v1/keys/rotate", auth(h.rotateKeys))

	// Anything else: a problem document, not the mux's text/plain 404/405.
	mux.Handle("/", open(func(w http.ResponseWriter, r *http.Request) error {
		return &apiError{status: http.StatusNotFound, typ: "not-found", detail: "No such endpoint; see /openapi.json."}
	}))
	return httpx.Middleware(h.Log, mux)
}

// profile turns internal/profiling's errors (returned before anything was
// written) into problems.
func profile(fn handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		err := fn(w, r)
		switch {
		case errors.Is(err, profiling.ErrSeconds):
			return badRequest("%s.", err)
		case errors.Is(err, profiling.ErrUnknown):
			return &apiError{status: http.StatusNotFound, typ: "not-found", detail: err.Error() + "."}
		case errors.Is(err, profiling.ErrBusy):
			return &apiError{status: http.StatusConflict, typ: "conflict", detail: err.Error() + "."}
		}
		return err
	}
}

// handlerFunc is an admin handler: it returns an error that handle turns
// into a problem document.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (h *Handler) handle(fn handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			h.writeError(w, r, err)
		}
	})
}

// authorized checks the bearer token (RFC 6750 §2.1) against the SHA-256 of
// the configured one in constant time: hashing first makes the comparison
// independent of the presented token's length.
func (h *Handler) authorized(want [sha256.Size]byte, next handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if !ok || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="latchkey-admin"`)
			return &apiError{status: http.StatusUnauthorized, typ: "unauthorized", detail: "A valid admin token is required (Authorization: Bearer ...)."}
		}
		return next(w, r)
	}
}

func (h *Handler) ready(w http.ResponseWriter, r *http.Request) error {
	if h.Ready != nil {
		if err := h.Ready(r.Context()); err != nil {
			h.Log.Warn("not ready", slog.String("request_id", httpx.RequestID(r.Context())), slog.Any("error", err))
			http.Error(w, "database unavailable", http.StatusServiceUnavailable)
			return nil
		}
	}
	_, err := w.Write([]byte("ok\n"))
	return err
}

func serveOpenAPIYAML(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/yaml")
	_, err := w.Write(OpenAPI)
	return err
}

func serveOpenAPIJSON(w http.ResponseWriter, r *http.Request) error {
	b, err := OpenAPIJSON()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(b)
	return err
}

// OpenAPIJSON returns the OpenAPI document as JSON.
func OpenAPIJSON() ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(OpenAPI, &doc); err != nil {
		return nil, fmt.Errorf("admin: openapi.yaml: %w", err)
	}
	return json.Marshal(doc)
}

// Problem is an RFC 9457 problem details object. Errors lists each
// validation problem when there are several.
type Problem struct {
	Type      string   `json:"type"`
	Title     string   `json:"title"`
	Status    int      `json:"status"`
	Detail    string   `json:"detail,omitempty"`
	Errors    []string `json:"errors,omitempty"`
	RequestID string   `json:"request_id,omitempty"`
}

// Error makes a problem received by the Client an error carrying the
// server's detail, so the remote CLI prints what the local one would.
func (p *Problem) Error() string {
	if p.Detail != "" {
		return p.Detail
	}
	return p.Title
}

// ProblemTypePrefix starts every problem type URI.
const ProblemTypePrefix = "urn:latchkey:problem:"

// apiError is an error made by this package with its own status.
type apiError struct {
	status int
	typ    string
	detail string
}

func (e *apiError) Error() string { return e.detail }

func badRequest(format string, args ...any) error {
	return &apiError{status: http.StatusBadRequest, typ: "invalid-input", detail: fmt.Sprintf(format, args...)}
}

// writeError maps err to a problem: operator validation → 400, unknown
// records → 404, duplicates and lost races → 409, a key set not ready to
// rotate → 409, an unreachable database → 503, anything else → 500 with
// the cause only in the log.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	p := Problem{RequestID: httpx.RequestID(r.Context()), Detail: err.Error()}
	var ae *apiError
	level := slog.LevelInfo
	switch {
	case errors.As(err, &ae):
		p.Status, p.Type = ae.status, ae.typ
	case errors.Is(err, operator.ErrInvalid):
		p.Status, p.Type = http.StatusBadRequest, "invalid-input"
		if lines := strings.Split(err.Error(), "\n"); len(lines) > 1 {
			p.Errors = lines
		}
	case errors.Is(err, store.ErrNotFound):
		p.Status, p.Type = http.StatusNotFound, "not-found"
	case errors.Is(err, store.ErrConflict):
		p.Status, p.Type = http.StatusConflict, "conflict"
	case errors.Is(err, keys.ErrNotReady):
		p.Status, p.Type = http.StatusConflict, "keys-not-ready"
	case oauth.Unavailable(err):
		p.Status, p.Type, p.Detail = http.StatusServiceUnavailable, "unavailable", "The database is unavailable; retry shortly."
		w.Header().Set("Retry-After", "5")
		level = slog.LevelWarn
	default:
		p.Status, p.Type, p.Detail = http.StatusInternalServerError, "internal", "Internal error; the server log has the cause (see request_id)."
		level = slog.LevelError
	}
	p.Type = ProblemTypePrefix + p.Type
	p.Title = http.StatusText(p.Status)
	h.Log.LogAttrs(r.Context(), level, "admin request failed", slog.String("request_id", p.RequestID),
		slog.String("path", r.URL.Path), slog.Int("status", p.Status), slog.String("error", err.Error()))
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// decode reads a JSON request body into v: the media type must be JSON,
// the body at most MaxBodyBytes, one object, with no unknown fields (a
// misspelt field must not be silently ignored).
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mt != "application/json" && mt != "application/merge-patch+json") {
		return &apiError{status: http.StatusUnsupportedMediaType, typ: "unsupported-media-type", detail: "The request body must be application/json."}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &apiError{status: http.StatusRequestEntityTooLarge, typ: "too-large", detail: fmt.Sprintf("The request body is larger than %d bytes.", MaxBodyBytes)}
		}
		return badRequest("The request body is not valid JSON for this endpoint: %s.", jsonProblem(err))
	}
	if dec.More() {
		return badRequest("The request body must be a single JSON object.")
	}
	return nil
}

// jsonProblem describes a decoding error without echoing the body (which
// may hold a password).
func jsonProblem(err error) string {
	var ute *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &ute):
		return fmt.Sprintf("field %q must be %s", ute.Field, ute.Type)
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return "malformed JSON"
}

func (h *Handler) now() time.Time { return h.Now().UTC().Truncate(time.Millisecond) }
