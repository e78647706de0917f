package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// SessionEndedError means Latchkey refused the session's refresh token
// (invalid_grant): the grant behind the session is over, and the app ended
// the session. Reason is Latchkey's error_reason (consent_withdrawn,
// expired_idle, reused, ...), or "" when it is not known.
type SessionEndedError struct {
	Reason string
}

func (e *SessionEndedError) Error() string {
	return "app: session ended (reason: " + cmpReason(e.Reason) + ")"
}

func cmpReason(r string) string {
	if r == "" {
		return "unknown"
	}
	return r
}

// Message is what the app tells the user.
func (e *SessionEndedError) Message() string {
	r := cmpReason(e.Reason)
	switch e.Reason {
	case "expired_idle", "expired_absolute":
		return "Your sign-in expired (reason: " + r + "). Sign in again."
	case "policy_changed":
		return "This app now requires two-step verification (reason: " + r + "). Sign in again."
	case "":
		return "Your session ended. Sign in again."
	}
	return "Your access was revoked (reason: " + r + "). Sign in again."
}

// errTokenRejected: userinfo answered 401 to the access token.
var errTokenRejected = errors.New("app: the access token was rejected")

// UserInfo is Latchkey's userinfo answer (OIDC Core §5.3.2).
type UserInfo struct {
	Subject           string `json:"sub"`
	Name              string `json:"name"`
	PreferredUsername string `json:"preferred_username"`
	Email             string `json:"email"`
}

// profile fetches the user's profile with the session's access token,
// refreshing it first when it is about to expire. It returns the session as
// it is afterwards (for display).
func (a *App) profile(ctx context.Context, key string) (*UserInfo, *Session, error) {
	at, subject, err := a.accessToken(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	info, err := a.userinfo(ctx, at, subject)
	if errors.Is(err, errTokenRejected) {
		// Refused before its expiry: Latchkey may have revoked it (the user
		// withdrew the app's access, say). A refresh tells: it yields a
		// new token, or ends the session with Latchkey's reason.
		if at, err = a.refresh(ctx, key, at); err != nil {
			return nil, nil, err
		}
		info, err = a.userinfo(ctx, at, subject)
	}
	if err != nil {
		return nil, nil, err
	}
	s, err := a.sessions.Get(ctx, key)
	if err != nil {
		return nil, nil, &SessionEndedError{} // signed out meanwhile
	}
	return info, s, nil
}

// accessToken returns the session's access token (and the user's subject),
// refreshed first if less than RefreshBefore of it is left.
func (a *App) accessToken(ctx context.Context, key string) (token, subject string, err error) {
	s, err := a.sessions.Get(ctx, key)
	if err != nil {
		return "", "", &SessionEndedError{}
	}
	at, err := a.seal.open(key, "access", s.AccessToken)
	if err != nil {
		return "", "", err
	}
	if a.now().Before(s.AccessExpiry.Add(-a.cfg.RefreshBefore)) {
		return at, s.Subject, nil
	}
	nat, err := a.refresh(ctx, key, at)
	var ended *SessionEndedError
	if err != nil && !errors.As(err, &ended) && a.now().Before(s.AccessExpiry) {
		// Latchkey could not be reached, but the token has a little life
		// left: use it, and try the refresh again at the next request.
		a.log.Warn("refresh failed; using the current access token until it expires", slog.Any("error", err))
		return at, s.Subject, nil
	}
	return nat, s.Subject, err
}

// refresh replaces the session's access token stale with a new one. At most
// one refresh per session is in flight: concurrent callers wait for it and
// share its result (singleflight, keyed by session). The refresh runs
// detached from the caller's context, so a client that hangs up does not
// abandon a rotation half done.
func (a *App) refresh(ctx context.Context, key, stale string) (string, error) {
	v, err, _ := a.flight.Do(key, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
		defer cancel()
		return a.doRefresh(ctx, key, stale)
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

func (a *App) doRefresh(ctx context.Context, key, stale string) (string, error) {
	s, err := a.sessions.Get(ctx, key)
	if errors.Is(err, ErrNoSession) {
		return "", &SessionEndedError{}
	}
	if err != nil {
		return "", err
	}
	// A refresh that finished just before this one started already did
	// the work: use its token rather than rotating again.
	if cur, err := a.seal.open(key, "access", s.AccessToken); err == nil && cur != stale &&
		a.now().Before(s.AccessExpiry.Add(-a.cfg.RefreshBefore)) {
		return cur, nil
	}
	rt, err := a.seal.open(key, "refresh", s.RefreshToken)
	if err != nil {
		return "", err
	}
	issued := a.now()
	tok, err := a.oauth.TokenSource(a.ctx(ctx), &oauth2.Token{RefreshToken: rt}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
			// The grant is over (revoked, expired, reused, ...): end the
			// session and say why.
			reason := errorReason(re.Body)
			a.log.Info("Latchkey refused the refresh token; session ended",
				slog.String("reason", reason), slog.String("description", re.ErrorDescription))
			_ = a.sessions.Delete(ctx, key)
			return "", &SessionEndedError{Reason: reason}
		}
		return "", fmt.Errorf("refresh: %s", oauthError(err))
	}
	// OIDC Core §12.2: an ID token from a refresh is about the same user.
	if raw, _ := tok.Extra("id_token").(string); raw != "" {
		idt, err := a.verifier.Verify(ctx, raw)
		if err != nil || idt.Subject != s.Subject {
			a.log.Error("the ID token from a refresh did not verify, or names another user; session ended", slog.Any("error", err))
			_ = a.sessions.Delete(ctx, key)
			return "", &SessionEndedError{}
		}
	}
	// Store the rotated refresh token before the new access token is used.
	// Latchkey has already retired the old one: presenting it again after
	// its short grace window counts as reuse and ends the whole family.
	a.putTokens(key, s, tok, issued)
	s.Refreshes++
	s.LastRefresh = a.now()
	if err := a.sessions.Replace(ctx, key, s); errors.Is(err, ErrNoSession) {
		// Signed out while the refresh was in flight: do not undo that.
		if err := a.revoke(a.ctx(ctx), tok.RefreshToken); err != nil {
			a.log.Warn("revoke refresh token", slog.Any("error", err))
		}
		return "", &SessionEndedError{}
	} else if err != nil {
		return "", fmt.Errorf("store the rotated refresh token: %w", err)
	}
	a.log.Info("access token refreshed", slog.Time("expires", s.AccessExpiry))
	return tok.AccessToken, nil
}

// errorReason reads Latchkey's error_reason from a token endpoint error body.
func errorReason(body []byte) string {
	var e struct {
		Reason string `json:"error_reason"`
	}
	_ = json.Unmarshal(body, &e)
	if len(e.Reason) > 64 {
		return ""
	}
	return e.Reason
}

// oauthError summarises a token endpoint failure without echoing anything
// the server sent beyond its error code and reason.
func oauthError(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.ErrorCode == "" {
			return fmt.Sprintf("HTTP %d", re.Response.StatusCode)
		}
		if r := errorReason(re.Body); r != "" {
			return re.ErrorCode + ", " + r
		}
		return re.ErrorCode
	}
	return "Latchkey could not be reached"
}

// userinfo calls Latchkey's userinfo endpoint with the access token.
func (a *App) userinfo(ctx context.Context, accessToken, subject string) (*UserInfo, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.userinfoURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	req.Header.Set("Accept", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("userinfo: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("userinfo: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, errTokenRejected
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("userinfo: HTTP %d", resp.StatusCode)
	}
	var info UserInfo
	if err := json.Unmarshal(body, &info); err != nil {
		return nil, fmt.Errorf("userinfo: %w", err)
	}
	// OIDC Core §5.3.2: the sub must be the ID token's.
	if info.Subject != subject {
		return nil, errors.New("userinfo: the answer is about another user")
	}
	return &info, nil
}

// revoke revokes a refresh token at Latchkey (RFC 7009), which ends its
// whole family.
func (a *App) revoke(ctx context.Context, refreshToken string) error {
	if a.revocationURL == "" {
		return errors.New("Latchkey advertises no revocation endpoint")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	form := url.Values{"token": {refreshToken}, "token_type_hint": {"refresh_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.revocationURL, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	// RFC 6749 §2.3.1: client_secret_basic form-encodes id and secret.
	req.SetBasicAuth(url.QueryEscape(a.cfg.ClientID), url.QueryEscape(a.cfg.ClientSecret))
	resp, err := a.client.Do(req)
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("revoke: HTTP %d", resp.StatusCode)
	}
	return nil
}
