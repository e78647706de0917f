package httpx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/latchkey-dev/latchkey/internal/oauth"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
func (s *syncBuf) Reset()                      { s.mu.Lock(); defer s.mu.Unlock(); s.b.Reset() }

func decodeOAuth(t *testing.T, body io.Reader) map[string]string {
	t.Helper()
	var m map[string]string
	if err := json.NewDecoder(body).Decode(&m); err != nil {
		t.Fatalf("body is not a JSON error object: %v", err)
	}
	return m
}

func formRequest(method, target, ct, body string) *http.Request {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if ct != "" {
		r.Header.Set("Content-Type", ct)
	}
	return r
}

func TestParseForm(t *testing.T) {
	const form = "application/x-www-form-urlencoded"
	tests := []struct {
		name    string
		req     *http.Request
		status  int    // 0 = success
		desc    string // substring of the error description
		allow   bool   // expect an Allow: POST header
		want    url.Values
		notWant []string
	}{
		{name: "ok", req: formRequest("POST", "/token", form, "grant_type=refresh_token&refresh_token=abc"),
			want: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"abc"}}},
		{name: "charset parameter", req: formRequest("POST", "/token", form+"; charset=UTF-8", "a=1"), want: url.Values{"a": {"1"}}},
		{name: "upper case type", req: formRequest("POST", "/token", "Application/X-WWW-Form-Urlencoded", "a=1"), want: url.Values{"a": {"1"}}},
		{name: "empty body", req: formRequest("POST", "/token", form, ""), want: url.Values{}},
		{name: "query parameters ignored", req: formRequest("POST", "/token?client_secret=from-query&a=q", form, "b=2"),
			want: url.Values{"b": {"2"}}, notWant: []string{"client_secret", "a"}},
		{name: "GET", req: formRequest("GET", "/token?a=1", "", ""), status: 405, desc: "Use POST", allow: true},
		{name: "PUT", req: formRequest("PUT", "/token", form, "a=1"), status: 405, desc: "Use POST", allow: true},
		{name: "JSON body", req: formRequest("POST", "/token", "application/json", `{"a":1}`), status: 415, desc: "application/x-www-form-urlencoded"},
		{name: "multipart", req: formRequest("POST", "/token", "multipart/form-data; boundary=x", "--x--"), status: 415},
		{name: "no content type", req: formRequest("POST", "/token", "", "a=1"), status: 415},
		{name: "type prefix only", req: formRequest("POST", "/token", "application/x-www-form-urlencodedX", "a=1"), status: 415},
		{name: "too large", req: formRequest("POST", "/token", form, "a="+strings.Repeat("x", MaxFormBytes)), status: 413, desc: "too large (limit 65536 bytes)"},
		{name: "repeated body parameter", req: formRequest("POST", "/token", form, "grant_type=a&grant_type=b"), status: 400, desc: `The "grant_type" parameter must not be repeated.`},
		{name: "repeated empty parameter", req: formRequest("POST", "/token", form, "scope=&scope="), status: 400, desc: "must not be repeated"},
		{name: "bad escape", req: formRequest("POST", "/token", form, "a=%zz"), status: 400, desc: "not a valid form"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			got, err := ParseForm(rec, tt.req)
			if tt.status == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(tt.want) {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
				for k, v := range tt.want {
					if len(got[k]) != 1 || got[k][0] != v[0] {
						t.Fatalf("got %v, want %v", got, tt.want)
					}
				}
				for _, k := range tt.notWant {
					if got.Has(k) {
						t.Errorf("query parameter %q returned as a body parameter", k)
					}
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted: %v", got)
			}
			var e *oauth.Error
			if !errors.As(err, &e) {
				t.Fatalf("not an *oauth.Error: %v", err)
			}
			if e.Code != oauth.InvalidRequest || e.HTTPStatus() != tt.status {
				t.Errorf("got %s %d, want invalid_request %d", e.Code, e.HTTPStatus(), tt.status)
			}
			if !strings.Contains(e.Description, tt.desc) {
				t.Errorf("description %q does not contain %q", e.Description, tt.desc)
			}
			if allow := rec.Header().Get("Allow"); (allow == "POST") != tt.allow {
				t.Errorf("Allow header %q", allow)
			}
		})
	}
}

func TestParseFormExactlyAtLimit(t *testing.T) {
	body := "a=" + strings.Repeat("x", MaxFormBytes-2)
	r := formRequest("POST", "/token", "application/x-www-form-urlencoded", body)
	v, err := ParseForm(httptest.NewRecorder(), r)
	if err != nil || len(v.Get("a")) != MaxFormBytes-2 {
		t.Fatalf("a body of exactly MaxFormBytes: %v", err)
	}
}

func TestSingleValued(t *testing.T) {
	if err := SingleValued(url.Values{"a": {"1"}, "b": {""}}); err != nil {
		t.Errorf("single values refused: %v", err)
	}
	long := strings.Repeat("k", 100)
	err := SingleValued(url.Values{long: {"1", "2"}})
	if err == nil || !strings.Contains(err.Error(), strings.Repeat("k", 64)+`"`) || strings.Contains(err.Error(), strings.Repeat("k", 65)) {
		t.Errorf("long repeated key not truncated to 64: %v", err)
	}
}

func TestWriteOAuthError(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		status  int
		body    map[string]string
		wwwAuth string
	}{
		{"invalid_grant with reason", oauth.New(oauth.InvalidGrant, "The refresh token was reused.").WithReason(oauth.ReasonReused),
			400, map[string]string{"error": "invalid_grant", "error_description": "The refresh token was reused.", "error_reason": "reused"}, ""},
		{"invalid_client basic", &oauth.Error{Code: oauth.InvalidClient, Description: "Client authentication failed.", WWWAuthenticate: `Basic realm="latchkey"`},
			401, map[string]string{"error": "invalid_client", "error_description": "Client authentication failed."}, `Basic realm="latchkey"`},
		{"explicit status", oauth.New(oauth.InvalidRequest, "slow down").WithStatus(429),
			429, map[string]string{"error": "invalid_request", "error_description": "slow down"}, ""},
		{"no description", &oauth.Error{Code: oauth.InvalidScope},
			400, map[string]string{"error": "invalid_scope"}, ""},
		{"plain error hidden", errors.New("pq: password authentication failed for user root"),
			500, map[string]string{"error": "server_error", "error_description": "The server could not complete the request. Try again later."}, ""},
		{"cause not sent", oauth.Wrap(errors.New("disk full at /var/lib"), "store failed"),
			500, map[string]string{"error": "server_error", "error_description": "store failed"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			WriteOAuthError(rec, httptest.NewRequest("POST", "/token", nil), tt.err)
			res := rec.Result()
			if res.StatusCode != tt.status {
				t.Errorf("status %d, want %d", res.StatusCode, tt.status)
			}
			h := res.Header
			if h.Get("Content-Type") != "application/json" || h.Get("Cache-Control") != "no-store" || h.Get("Pragma") != "no-cache" {
				t.Errorf("headers %v", h)
			}
			if got := h.Get("WWW-Authenticate"); got != tt.wwwAuth {
				t.Errorf("WWW-Authenticate %q, want %q", got, tt.wwwAuth)
			}
			raw, _ := io.ReadAll(res.Body)
			body := decodeOAuth(t, bytes.NewReader(raw))
			if len(body) != len(tt.body) {
				t.Errorf("body %s, want %v", raw, tt.body)
			}
			for k, v := range tt.body {
				if body[k] != v {
					t.Errorf("%s = %q, want %q (body %s)", k, body[k], v, raw)
				}
			}
			if strings.Contains(string(raw), "password authentication") || strings.Contains(string(raw), "disk full") {
				t.Errorf("cause leaked: %s", raw)
			}
		})
	}
}

func TestWriteJSONCached(t *testing.T) {
	rec := httptest.NewRecorder()
	rec.Header().Set("Cache-Control", "public, max-age=300")
	WriteJSONCached(rec, 200, map[string]int{"a": 1})
	if rec.Header().Get("Cache-Control") != "public, max-age=300" || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", rec.Header())
	}
	if strings.TrimSpace(rec.Body.String()) != `{"a":1}` {
		t.Errorf("body %q", rec.Body.String())
	}
}

func TestMiddlewareRecoversPanic(t *testing.T) {
	var logs syncBuf
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	var seenID string
	h := Middleware(log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seenID = RequestID(r.Context())
		panic("boom: secret state")
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	res, err := http.Get(srv.URL + "/token")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 500 {
		t.Fatalf("status %d, want 500", res.StatusCode)
	}
	id := res.Header.Get("X-Request-Id")
	if id == "" || id != seenID || len(id) != 12 {
		t.Errorf("X-Request-Id %q, handler saw %q", id, seenID)
	}
	if res.Header.Get("Content-Type") != "application/json" || res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v", res.Header)
	}
	body := decodeOAuth(t, res.Body)
	if body["error"] != "server_error" || body["error_description"] != "internal error" {
		t.Errorf("body %v", body)
	}
	out := logs.String()
	if !strings.Contains(out, `"msg":"panic"`) || !strings.Contains(out, `"request_id":"`+id+`"`) || !strings.Contains(out, `"status":500`) {
		t.Errorf("logs lack the panic or access line: %s", out)
	}
}

func TestMiddlewarePanicAfterWrite(t *testing.T) {
	// A panic after the status was sent cannot change it; no second body.
	log := slog.New(slog.DiscardHandler)
	h := Middleware(log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, "partial")
		panic("late")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusAccepted || rec.Body.String() != "partial" {
		t.Errorf("got %d %q", rec.Code, rec.Body.String())
	}
}

func TestMiddlewareAbortHandlerRepanics(t *testing.T) {
	h := Middleware(slog.New(slog.DiscardHandler), http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic(http.ErrAbortHandler)
	}))
	defer func() {
		if p := recover(); p != http.ErrAbortHandler {
			t.Errorf("recovered %v, want http.ErrAbortHandler re-panicked", p)
		}
	}()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
}

func TestAccessLogHasNoQueryString(t *testing.T) {
	var logs syncBuf
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	h := Middleware(log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	res, err := http.Get(srv.URL + "/callback?code=SECRETCODE123&state=SECRETSTATE")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	out := logs.String()
	if strings.Contains(out, "SECRET") || strings.Contains(out, "code=") {
		t.Fatalf("query string reached the log: %s", out)
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &line); err != nil {
		t.Fatalf("want exactly one JSON access line, got %q: %v", out, err)
	}
	if line["msg"] != "http" || line["method"] != "GET" || line["path"] != "/callback" || line["status"] != float64(418) ||
		line["request_id"] != res.Header.Get("X-Request-Id") {
		t.Errorf("access line %v", line)
	}
	if _, ok := line["duration"]; !ok {
		t.Error("no duration in access line")
	}
}

func TestAccessLogDefaultStatus(t *testing.T) {
	var logs syncBuf
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	h := Middleware(log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "hi") }))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil))
	if !strings.Contains(logs.String(), `"status":200`) {
		t.Errorf("implicit 200 not logged: %s", logs.String())
	}
}

func TestRequestIDsAreUnique(t *testing.T) {
	h := Middleware(slog.New(slog.DiscardHandler), http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	seen := map[string]bool{}
	for range 200 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		id := rec.Header().Get("X-Request-Id")
		if id == "" || seen[id] {
			t.Fatalf("request id %q empty or repeated", id)
		}
		seen[id] = true
	}
	if RequestID(httptest.NewRequest("GET", "/", nil).Context()) != "" {
		t.Error("RequestID outside the middleware is not empty")
	}
}

func TestHandle(t *testing.T) {
	var logs syncBuf
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tests := []struct {
		name   string
		err    error
		status int
		level  string
	}{
		{"client error", oauth.New(oauth.InvalidGrant, "bad"), 400, "INFO"},
		{"server error", errors.New("db exploded"), 500, "ERROR"},
		{"unavailable", oauth.New(oauth.TemporarilyUnavailable, "later"), 503, "ERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs.mu.Lock()
			logs.b.Reset()
			logs.mu.Unlock()
			var rendered error
			h := Handle(log, func(w http.ResponseWriter, r *http.Request, err error) {
				rendered = err
				WriteOAuthError(w, r, err)
			}, func(http.ResponseWriter, *http.Request) error { return tt.err })
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("POST", "/token?code=QUERYSECRET", nil))
			if rec.Code != tt.status {
				t.Errorf("status %d, want %d", rec.Code, tt.status)
			}
			var e *oauth.Error
			if !errors.As(rendered, &e) {
				t.Fatalf("error writer got %T, want *oauth.Error", rendered)
			}
			out := logs.String()
			if !strings.Contains(out, `"level":"`+tt.level+`"`) || !strings.Contains(out, `"path":"/token"`) {
				t.Errorf("log line %s", out)
			}
			if strings.Contains(out, "QUERYSECRET") {
				t.Errorf("query string logged: %s", out)
			}
		})
	}
	// Success: nothing rendered, nothing logged.
	logs.mu.Lock()
	logs.b.Reset()
	logs.mu.Unlock()
	called := false
	h := Handle(log, func(http.ResponseWriter, *http.Request, error) { called = true }, func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(204)
		return nil
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if called || rec.Code != 204 || logs.String() != "" {
		t.Errorf("success path: called=%v code=%d logs=%q", called, rec.Code, logs.String())
	}
}

func TestStatusRecorderUnwrap(t *testing.T) {
	// http.ResponseController must reach the underlying writer.
	h := Middleware(slog.New(slog.DiscardHandler), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("Flush through the recorder: %v", err)
		}
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
}

// A handler that fails because its client went away is not a server
// error: it is logged at INFO, its outcome is "canceled" and its status
// 499 (for the access log and the metrics; no client reads it). The same
// error while the request is still live is the server's own.
func TestHandleClientGone(t *testing.T) {
	var logs syncBuf
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	h := Handle(log, WriteOAuthError, func(w http.ResponseWriter, r *http.Request) error {
		return fmt.Errorf("load client: %w", context.Canceled)
	})

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ctx, outcome := WithOutcome(ctx)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodPost, "/token", nil))
	if rec.Code != StatusClientClosedRequest || rec.Body.Len() != 0 {
		t.Errorf("client gone: status %d, body %q; want 499 and nothing", rec.Code, rec.Body)
	}
	if outcome.Code != OutcomeCanceled {
		t.Errorf("client gone: outcome %q, want %q", outcome.Code, OutcomeCanceled)
	}
	out := logs.String()
	if !strings.Contains(out, `"level":"INFO","msg":"request canceled"`) || strings.Contains(out, "ERROR") {
		t.Errorf("client gone: logs %s", out)
	}

	logs.Reset()
	ctx, outcome = WithOutcome(context.Background())
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodPost, "/token", nil))
	if rec.Code != http.StatusInternalServerError || outcome.Code != oauth.ServerError {
		t.Errorf("live request: status %d, outcome %q; want 500 server_error", rec.Code, outcome.Code)
	}
	if out := logs.String(); !strings.Contains(out, `"level":"ERROR","msg":"request failed"`) {
		t.Errorf("live request: logs %s", out)
	}
}
