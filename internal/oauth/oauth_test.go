package oauth

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestParseScope(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"   ", nil},
		{"openid", []string{"openid"}},
		{"openid profile email", []string{"openid", "profile", "email"}},
		{"email openid", []string{"email", "openid"}}, // order kept
		{"openid openid profile openid", []string{"openid", "profile"}},
		{"  profile\topenid\n profile ", []string{"profile", "openid"}},
		{"a b a c b", []string{"a", "b", "c"}},
		{"OpenID openid", []string{"OpenID", "openid"}}, // case-sensitive
	}
	for _, tt := range tests {
		got := ParseScope(tt.in)
		if !slices.Equal(got, tt.want) {
			t.Errorf("ParseScope(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := JoinScope([]string{"openid", "profile"}); got != "openid profile" {
		t.Errorf("JoinScope = %q", got)
	}
	if got := JoinScope(nil); got != "" {
		t.Errorf("JoinScope(nil) = %q", got)
	}
}

func TestSubset(t *testing.T) {
	tests := []struct {
		a, b []string
		want bool
	}{
		{nil, nil, true},
		{nil, []string{"openid"}, true},
		{[]string{"openid"}, nil, false},
		{[]string{"openid"}, []string{"openid", "email"}, true},
		{[]string{"email", "openid"}, []string{"openid", "email"}, true},
		{[]string{"openid", "profile"}, []string{"openid", "email"}, false},
		{[]string{"openid", "openid"}, []string{"openid"}, true},
		{[]string{"OPENID"}, []string{"openid"}, false},
	}
	for _, tt := range tests {
		if got := Subset(tt.a, tt.b); got != tt.want {
			t.Errorf("Subset(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestValidScopeToken(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"openid", true},
		{"offline_access", true},
		{"https://api.example.com/read", true},
		{"a!#$%&'()*+,-./:;<=>?@[]^_`{|}~", true},
		{"!", true},
		{"~", true},
		{"", false},
		{" ", false},
		{"a b", false},
		{"a\"b", false},
		{"a\\b", false},
		{"tab\there", false},
		{"nl\n", false},
		{"del\x7f", false},
		{"nul\x00", false},
		{"é", false},
		{"naïve", false},
	}
	for _, tt := range tests {
		if got := ValidScopeToken(tt.in); got != tt.want {
			t.Errorf("ValidScopeToken(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	// Exhaustive over single bytes against RFC 6749 §3.3.
	for c := 0; c < 256; c++ {
		want := c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e)
		if got := ValidScopeToken(string([]byte{byte(c)})); got != want {
			t.Errorf("ValidScopeToken(%#x) = %v, want %v", c, got, want)
		}
	}
}

func TestHTTPStatus(t *testing.T) {
	tests := []struct {
		code string
		want int
	}{
		{InvalidRequest, 400},
		{InvalidClient, 401},
		{InvalidGrant, 400},
		{UnauthorizedClient, 400},
		{UnsupportedGrantType, 400},
		{InvalidScope, 400},
		{AccessDenied, 400},
		{ServerError, 500},
		{TemporarilyUnavailable, 503},
		{InvalidToken, 401},
		{InsufficientScope, 403},
		{InvalidDPoPProof, 400},
		{"something_else", 400},
	}
	for _, tt := range tests {
		e := New(tt.code, "x")
		if got := e.HTTPStatus(); got != tt.want {
			t.Errorf("%s: HTTPStatus = %d, want %d", tt.code, got, tt.want)
		}
	}
	e := New(InvalidRequest, "x")
	s := e.WithStatus(http.StatusMethodNotAllowed)
	if s.HTTPStatus() != 405 {
		t.Errorf("WithStatus: %d", s.HTTPStatus())
	}
	if e.Status != 0 || e.HTTPStatus() != 400 {
		t.Error("WithStatus modified the original")
	}
}

func TestErrorStringAndCopies(t *testing.T) {
	cause := errors.New("db down")
	e := New(InvalidGrant, "The %s is %d days old.", "token", 3)
	if e.Code != InvalidGrant || e.Description != "The token is 3 days old." {
		t.Fatalf("New = %+v", e)
	}
	if got := e.Error(); got != "invalid_grant: The token is 3 days old." {
		t.Errorf("Error() = %q", got)
	}
	if got := (&Error{Code: InvalidScope}).Error(); got != "invalid_scope" {
		t.Errorf("Error() without description = %q", got)
	}
	r := e.WithReason(ReasonReused)
	if r.Reason != "reused" || e.Reason != "" {
		t.Errorf("WithReason: %q / original %q", r.Reason, e.Reason)
	}
	c := e.WithCause(cause)
	if c.Cause != cause || e.Cause != nil {
		t.Error("WithCause changed the original or lost the cause")
	}
	if got := c.Error(); got != "invalid_grant: The token is 3 days old.: db down" {
		t.Errorf("Error() with cause = %q", got)
	}
	if !errors.Is(c, cause) {
		t.Error("errors.Is does not reach the cause")
	}
	w := Wrap(cause, "store failed")
	if w.Code != ServerError || w.Description != "store failed" || w.Cause != cause || w.HTTPStatus() != 500 {
		t.Errorf("Wrap = %+v", w)
	}
}

func TestIsMatchesByCode(t *testing.T) {
	err := fmt.Errorf("handler: %w", New(InvalidGrant, "The refresh token was reused.").WithReason(ReasonReused))
	if !errors.Is(err, &Error{Code: InvalidGrant}) {
		t.Error("errors.Is does not match the same code through wrapping")
	}
	if errors.Is(err, &Error{Code: InvalidClient}) {
		t.Error("errors.Is matches a different code")
	}
	if errors.Is(err, errors.New("invalid_grant")) {
		t.Error("errors.Is matches a plain error with the same text")
	}
	if New(InvalidGrant, "a").Is(New(InvalidGrant, "b")) != true {
		t.Error("descriptions must not matter for Is")
	}
}

func TestAs(t *testing.T) {
	orig := New(InvalidScope, "bad scope")
	if got := As(fmt.Errorf("wrapped: %w", orig)); got != orig {
		t.Errorf("As did not find the wrapped *Error: %+v", got)
	}
	plain := errors.New("connection refused to db at 10.0.0.1")
	got := As(plain)
	if got.Code != ServerError || got.HTTPStatus() != 500 {
		t.Fatalf("As(plain) = %+v", got)
	}
	if got.Cause != plain {
		t.Error("As lost the cause")
	}
	if strings.Contains(got.Description, "10.0.0.1") {
		t.Errorf("the cause leaks into the client description: %q", got.Description)
	}
	if got.Description != "The server could not complete the request. Try again later." {
		t.Errorf("As(plain).Description = %q", got.Description)
	}
}

func TestLogValue(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	e := New(InvalidGrant, "reused").WithReason(ReasonReused).WithCause(errors.New("family f1 at gen 3"))
	log.Info("failed", slog.Any("error", e))
	out := buf.String()
	for _, want := range []string{`"code":"invalid_grant"`, `"description":"reused"`, `"reason":"reused"`, `"cause":"family f1 at gen 3"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log line lacks %s: %s", want, out)
		}
	}
	// No reason, no cause: those keys are absent.
	buf.Reset()
	log.Info("failed", slog.Any("error", New(InvalidRequest, "x")))
	if strings.Contains(buf.String(), "reason") || strings.Contains(buf.String(), "cause") {
		t.Errorf("empty fields logged: %s", buf.String())
	}
}
