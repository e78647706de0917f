// Package httpx adapts error-returning handlers to net/http and holds the
// middleware every route shares: request ids, access logs without secrets,
// panic recovery, and the OAuth JSON error writer (RFC 6749 §5.2).
package httpx

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/secret"
)

// MaxFormBytes bounds every request body we parse.
const MaxFormBytes = 64 << 10

// StatusClientClosedRequest is the status the access log and the metrics
// give a request whose client went away before the answer (nginx's 499);
// it reaches no client.
const StatusClientClosedRequest = 499

// OutcomeCanceled is the Outcome code of such a request.
const OutcomeCanceled = "canceled"

type ctxKey int

const requestIDKey ctxKey = iota

// RequestID returns the request id set by Middleware.
func RequestID(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey).(string)
	return s
}

// HandlerFunc is a handler that returns an error; Handle turns the error into
// a response.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// ErrorWriter renders an error returned by a HandlerFunc.
type ErrorWriter func(w http.ResponseWriter, r *http.Request, err error)

// Handle adapts h: an error is logged with its cause and rendered by ew.
func Handle(log *slog.Logger, ew ErrorWriter, h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		if r.Context().Err() != nil && errors.Is(err, context.Canceled) {
			// The client closed the connection (or the server is shutting
			// down) before the answer: nobody reads it, and it is not the
			// server failing, so it is neither logged as an error nor
			// counted as a server_error.
			recordOutcome(r.Context(), OutcomeCanceled, "")
			log.LogAttrs(r.Context(), slog.LevelInfo, "request canceled", slog.String("request_id", RequestID(r.Context())),
				slog.String("path", r.URL.Path))
			w.WriteHeader(StatusClientClosedRequest)
			return
		}
		e := oauth.As(err)
		recordOutcome(r.Context(), e.Code, e.Reason)
		level := slog.LevelInfo
		if e.HTTPStatus() >= 500 {
			level = slog.LevelError
		}
		log.LogAttrs(r.Context(), level, "request failed", slog.String("request_id", RequestID(r.Context())),
			slog.String("path", r.URL.Path), slog.Any("error", e))
		ew(w, r, e)
	})
}

// OAuthResponse is the JSON error body of RFC 6749 §5.2.
type OAuthResponse struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
	Reason      string `json:"error_reason,omitempty"`
}

// WriteOAuthError writes err as an RFC 6749 §5.2 JSON error.
func WriteOAuthError(w http.ResponseWriter, r *http.Request, err error) {
	e := oauth.As(err)
	if e.WWWAuthenticate != "" {
		w.Header().Set("WWW-Authenticate", e.WWWAuthenticate)
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64((e.RetryAfter+time.Second-1)/time.Second), 10))
	}
	WriteJSON(w, e.HTTPStatus(), OAuthResponse{Error: e.Code, Description: e.Description, Reason: e.Reason})
}

// WriteJSON writes v as JSON with Cache-Control: no-store (RFC 6749 §5.1).
func WriteJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// StatusRecorder captures the status a handler sent (for the access log
// and the metrics middleware). Status is 0 until something is written.
type StatusRecorder struct {
	http.ResponseWriter
	Status int
}

func (s *StatusRecorder) WriteHeader(code int) {
	if s.Status == 0 {
		s.Status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *StatusRecorder) Write(b []byte) (int, error) {
	if s.Status == 0 {
		s.Status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *StatusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Middleware assigns a request id, recovers panics, and writes an access log
// line. It logs the path only — never the query string or body, which can
// carry codes, tokens and secrets.
func Middleware(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := secret.Random(9)
		w.Header().Set("X-Request-Id", id)
		r = r.WithContext(context.WithValue(r.Context(), requestIDKey, id))
		rec := &StatusRecorder{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				log.Error("panic", slog.String("request_id", id), slog.Any("panic", p))
				if rec.Status == 0 {
					WriteOAuthError(rec, r, oauth.New(oauth.ServerError, "internal error"))
				}
			}
			log.LogAttrs(r.Context(), slog.LevelInfo, "http", slog.String("request_id", id),
				slog.String("method", r.Method), slog.String("path", r.URL.Path),
				slog.Int("status", rec.Status), slog.Duration("duration", time.Since(start)))
		}()
		next.ServeHTTP(rec, r)
	})
}

// ParseForm parses a POST body of type application/x-www-form-urlencoded,
// limited to MaxFormBytes, and rejects repeated parameters (RFC 6749 §3.1,
// §3.2: "Request and response parameters MUST NOT be included more than
// once"). The returned values hold the body parameters only.
func ParseForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return nil, oauth.New(oauth.InvalidRequest, "Use POST for this endpoint.").WithStatus(http.StatusMethodNotAllowed)
	}
	ct := r.Header.Get("Content-Type")
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	if !strings.EqualFold(strings.TrimSpace(ct), "application/x-www-form-urlencoded") {
		return nil, oauth.New(oauth.InvalidRequest, "The request body must be application/x-www-form-urlencoded.").WithStatus(http.StatusUnsupportedMediaType)
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxFormBytes)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, oauth.New(oauth.InvalidRequest, "The request body is too large (limit %d bytes).", MaxFormBytes).WithStatus(http.StatusRequestEntityTooLarge)
		}
		return nil, oauth.New(oauth.InvalidRequest, "The request body is not a valid form.")
	}
	if err := SingleValued(r.PostForm); err != nil {
		return nil, err
	}
	return r.PostForm, nil
}

// SingleValued rejects any parameter given more than once.
func SingleValued(v url.Values) error {
	for k, vs := range v {
		if len(vs) > 1 {
			return oauth.New(oauth.InvalidRequest, "The %q parameter must not be repeated.", truncate(k, 64))
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// WriteJSONCached writes v as JSON keeping the caller's Cache-Control.
func WriteJSONCached(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
