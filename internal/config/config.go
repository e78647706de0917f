// Package config holds Latchkey's typed configuration. Values come, in
// increasing precedence, from the defaults below, a YAML file (--config),
// LATCHKEY_* environment variables and command-line flags. docs/configuration.md
// lists every setting; keep it in sync with the field comments here.
package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration that reads "90s", "10m", "720h" and also "30d".
type Duration time.Duration

// UnmarshalText parses a Go duration, with "d" accepted for days.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText renders the duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// ParseDuration parses a Go duration, also accepting a whole number of days ("30d").
func ParseDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		// Reject day counts that would overflow time.Duration (and wrap).
		if err != nil || days < 0 || days > int(math.MaxInt64/int64(24*time.Hour)) {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	return v, nil
}

// Config is the whole configuration. The env tag names the environment variable.
type Config struct {
	// Issuer is the public base URL; it is the `iss` of every token.
	Issuer string `yaml:"issuer" env:"LATCHKEY_ISSUER"`
	// Addr is the listen address of the public HTTP server.
	Addr string `yaml:"addr" env:"LATCHKEY_ADDR"`
	// Database is a SQLite file path, or a postgres:// URL.
	Database string `yaml:"database" env:"LATCHKEY_DATABASE"`
	// MasterKey (base64, 32 bytes) encrypts signing keys and TOTP secrets at
	// rest and keys the refresh-token MAC. MasterKeyFile reads it from a file.
	MasterKey     string `yaml:"master_key" env:"LATCHKEY_MASTER_KEY"`
	MasterKeyFile string `yaml:"master_key_file" env:"LATCHKEY_MASTER_KEY_FILE"`
	// OldMasterKeys (comma-separated base64 keys) are previous master keys,
	// kept for a while after `latchkey keys rotate-master`: refresh tokens
	// MACed under them still verify, and values sealed under them still
	// open. Nothing new is sealed or MACed with them. See docs/SECURITY.md.
	OldMasterKeys string `yaml:"old_master_keys" env:"LATCHKEY_OLD_MASTER_KEYS"`

	AccessTokenTTL Duration `yaml:"access_token_ttl" env:"LATCHKEY_ACCESS_TOKEN_TTL"`
	IDTokenTTL     Duration `yaml:"id_token_ttl" env:"LATCHKEY_ID_TOKEN_TTL"`
	// CodeTTL is the authorization code lifetime, at most 60s.
	CodeTTL Duration `yaml:"code_ttl" env:"LATCHKEY_CODE_TTL"`
	// RefreshIdle: a refresh token unused for this long expires (sliding).
	RefreshIdle Duration `yaml:"refresh_idle" env:"LATCHKEY_REFRESH_IDLE"`
	// RefreshAbsolute: a family ends this long after the original sign-in.
	RefreshAbsolute Duration `yaml:"refresh_absolute" env:"LATCHKEY_REFRESH_ABSOLUTE"`
	// RefreshGrace: how long a replay of the immediate predecessor is
	// answered with the same successor instead of counting as reuse.
	RefreshGrace Duration `yaml:"refresh_grace" env:"LATCHKEY_REFRESH_GRACE"`
	// ClientCacheTTL is how long each instance keeps a client record it
	// read from the database (0 reads it on every request). A client
	// changed through this instance is re-read at once; one changed
	// elsewhere within ClientCacheTTL.
	ClientCacheTTL Duration `yaml:"client_cache_ttl" env:"LATCHKEY_CLIENT_CACHE_TTL"`
	// SQLiteCheckpointInterval is how often `serve` copies the SQLite WAL
	// into the database file while it is being written to
	// (sqlstore.SetCheckpointInterval, docs/deployment.md). Longer: fewer
	// disturbances of the requests around each checkpoint, a larger WAL
	// file (about this many seconds of commits). Ignored on PostgreSQL.
	SQLiteCheckpointInterval Duration `yaml:"sqlite_checkpoint_interval" env:"LATCHKEY_SQLITE_CHECKPOINT_INTERVAL"`
	// SessionTTL is how long a browser sign-in lasts.
	SessionTTL Duration `yaml:"session_ttl" env:"LATCHKEY_SESSION_TTL"`
	// Credential-change triggers: each, when on, bumps the user's credential
	// epoch so that every refresh-token family born before the change fails
	// at its next use (credentials_changed). `latchkey user revoke-sessions`
	// always does.
	RevokeOnPasswordChange bool `yaml:"revoke_on_password_change" env:"LATCHKEY_REVOKE_ON_PASSWORD_CHANGE"`
	RevokeOnMFAEnroll      bool `yaml:"revoke_on_mfa_enroll" env:"LATCHKEY_REVOKE_ON_MFA_ENROLL"`
	RevokeOnMFARemove      bool `yaml:"revoke_on_mfa_remove" env:"LATCHKEY_REVOKE_ON_MFA_REMOVE"`
	// Sign-in throttling: failed password or code attempts allowed per
	// account and per source address within ThrottleWindow (0 disables).
	ThrottlePerAccount int      `yaml:"throttle_per_account" env:"LATCHKEY_THROTTLE_PER_ACCOUNT"`
	ThrottlePerAddress int      `yaml:"throttle_per_address" env:"LATCHKEY_THROTTLE_PER_ADDRESS"`
	ThrottleWindow     Duration `yaml:"throttle_window" env:"LATCHKEY_THROTTLE_WINDOW"`
	// Client authentication throttling at the token, revocation and
	// introspection endpoints: failed client authentications allowed per
	// client id and per source address within ThrottleWindow (0 disables).
	// The per-client limit stops secret guessing but lets anyone who
	// knows a client id hold it off for a window: see docs/SECURITY.md.
	ThrottleClientPerID      int `yaml:"throttle_client_per_id" env:"LATCHKEY_THROTTLE_CLIENT_PER_ID"`
	ThrottleClientPerAddress int `yaml:"throttle_client_per_address" env:"LATCHKEY_THROTTLE_CLIENT_PER_ADDRESS"`
	// DPoPRequireNonce makes every DPoP proof carry a server nonce
	// (RFC 9449 §8), which limits how long a proof made in advance is
	// usable. Nonces are stateless, so any instance accepts another's.
	DPoPRequireNonce bool `yaml:"dpop_require_nonce" env:"LATCHKEY_DPOP_REQUIRE_NONCE"`
	// AuditRetention is how long audit events are kept (0 keeps them forever).
	AuditRetention Duration `yaml:"audit_retention" env:"LATCHKEY_AUDIT_RETENTION"`
	// SweepInterval is how often expired and dead rows are deleted.
	SweepInterval Duration `yaml:"sweep_interval" env:"LATCHKEY_SWEEP_INTERVAL"`
	// SigningAlg is the JWS algorithm of access tokens and, unless a client
	// asks for another (id_token_signed_response_alg), of ID tokens: ES256
	// (the default), RS256 or EdDSA. See KeyAlgorithms.
	SigningAlg string `yaml:"signing_alg" env:"LATCHKEY_SIGNING_ALG"`
	// IDTokenAlgs (comma-separated) are further algorithms clients may ask
	// for their ID tokens, beyond SigningAlg and RS256 (which the server
	// always has keys for). Each one costs a key set to keep and rotate.
	IDTokenAlgs string `yaml:"id_token_algs" env:"LATCHKEY_ID_TOKEN_ALGS"`
	// Templates is an optional directory whose files override the embedded pages.
	Templates string `yaml:"templates" env:"LATCHKEY_TEMPLATES"`
	// HTTPOrder is how the public listener schedules requests: "arrival"
	// serves them in the order they arrived (internal/arrival; Linux, the
	// default there), "goroutine" is net/http's goroutine per connection
	// (the default elsewhere, and what "arrival" falls back to).
	HTTPOrder string `yaml:"http_order" env:"LATCHKEY_HTTP_ORDER"`
	// HTTPWorkers is how many requests the arrival-order server runs at
	// once (up to MaxHTTPWorkers; 0, the default, picks by database: 8 per
	// core on SQLite, 128 on PostgreSQL, server.NewPublicServer); the rest
	// wait in arrival order.
	HTTPWorkers int `yaml:"http_workers" env:"LATCHKEY_HTTP_WORKERS"`
	// LogFormat is "json" or "text"; LogLevel "debug", "info", "warn", "error".
	LogFormat string `yaml:"log_format" env:"LATCHKEY_LOG_FORMAT"`
	LogLevel  string `yaml:"log_level" env:"LATCHKEY_LOG_LEVEL"`
	// AdminAddr is the listen address of the admin API, metrics and health
	// checks (docs/admin-api.md): its own listener, never the public one.
	// Empty (the default) turns it off.
	AdminAddr string `yaml:"admin_addr" env:"LATCHKEY_ADMIN_ADDR"`
	// AdminToken is the bearer token the admin API requires (at least
	// MinAdminToken characters); AdminTokenFile reads it from a file. One of
	// them is required when AdminAddr is set. The CLI's remote mode
	// (--admin-url) sends the same token.
	AdminToken     string `yaml:"admin_token" env:"LATCHKEY_ADMIN_TOKEN"`
	AdminTokenFile string `yaml:"admin_token_file" env:"LATCHKEY_ADMIN_TOKEN_FILE"`
	// AdminPprof serves the Go runtime's profiles (CPU, execution trace,
	// heap, goroutines, ...) under /debug/pprof/ on the admin listener,
	// behind the admin token (docs/observability.md). Off by default: a
	// profile shows the server's internals and recording one costs CPU.
	AdminPprof bool `yaml:"admin_pprof" env:"LATCHKEY_ADMIN_PPROF"`
	// AuditWebhookURL receives every audit event as a signed JSON POST
	// (docs/observability.md); AuditWebhookSecret (or the file
	// AuditWebhookSecretFile) keys the HMAC-SHA256 signature. Empty URL:
	// off.
	AuditWebhookURL        string `yaml:"audit_webhook_url" env:"LATCHKEY_AUDIT_WEBHOOK_URL"`
	AuditWebhookSecret     string `yaml:"audit_webhook_secret" env:"LATCHKEY_AUDIT_WEBHOOK_SECRET"`
	AuditWebhookSecretFile string `yaml:"audit_webhook_secret_file" env:"LATCHKEY_AUDIT_WEBHOOK_SECRET_FILE"`
	// Dev creates demo data and, when no master key is set, generates one
	// into a file next to the database. Never use it in production.
	Dev bool `yaml:"dev" env:"LATCHKEY_DEV"`
}

// MaxHTTPWorkers bounds http_workers.
const MaxHTTPWorkers = 1024

// Default returns the documented defaults.
func Default() Config {
	return Config{
		Issuer:                   "http://localhost:8080",
		Addr:                     ":8080",
		Database:                 "latchkey.db",
		AccessTokenTTL:           Duration(10 * time.Minute),
		IDTokenTTL:               Duration(10 * time.Minute),
		CodeTTL:                  Duration(60 * time.Second),
		RefreshIdle:              Duration(30 * 24 * time.Hour),
		RefreshAbsolute:          Duration(90 * 24 * time.Hour),
		RefreshGrace:             Duration(5 * time.Second),
		ClientCacheTTL:           Duration(time.Second),
		SQLiteCheckpointInterval: Duration(2 * time.Second),
		SessionTTL:               Duration(12 * time.Hour),
		SweepInterval:            Duration(time.Minute),
		AuditRetention:           Duration(90 * 24 * time.Hour),
		RevokeOnPasswordChange:   true,
		RevokeOnMFAEnroll:        false,
		RevokeOnMFARemove:        true,
		ThrottlePerAccount:       10,
		ThrottlePerAddress:       100,
		ThrottleWindow:           Duration(15 * time.Minute),
		ThrottleClientPerID:      50,
		ThrottleClientPerAddress: 100,
		SigningAlg:               "ES256",
		LogFormat:                "json",
		HTTPOrder:                "arrival",
		LogLevel:                 "info",
	}
}

// Load applies the file at path (if non-empty) and then the environment
// (lookup is os.LookupEnv outside tests) on top of c.
func (c *Config) Load(path string, lookup func(string) (string, bool)) error {
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) { // io.EOF: empty file
			return fmt.Errorf("config %s: %w", path, err)
		}
	}
	if lookup == nil {
		lookup = os.LookupEnv
	}
	v := reflect.ValueOf(c).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		name := t.Field(i).Tag.Get("env")
		s, ok := lookup(name)
		if name == "" || !ok {
			continue
		}
		if err := setField(v.Field(i), s); err != nil {
			return fmt.Errorf("config: %s: %w", name, err)
		}
	}
	return nil
}

func setField(f reflect.Value, s string) error {
	switch f.Interface().(type) {
	case Duration:
		d, err := ParseDuration(s)
		if err != nil {
			return err
		}
		f.Set(reflect.ValueOf(Duration(d)))
	case bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("invalid boolean %q", s)
		}
		f.SetBool(b)
	case string:
		f.SetString(s)
	case int:
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return fmt.Errorf("invalid non-negative integer %q", s)
		}
		f.SetInt(int64(n))
	default:
		return fmt.Errorf("unsupported type %s", f.Type())
	}
	return nil
}

// Validate returns every problem at once.
func (c *Config) Validate() error {
	var errs []error
	u, err := url.Parse(c.Issuer)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		errs = append(errs, fmt.Errorf("issuer %q must be an absolute http(s) URL", c.Issuer))
	case u.RawQuery != "" || u.ForceQuery || strings.Contains(c.Issuer, "#"): // also a bare "?" or "#"
		// OIDC Discovery §3: the issuer has no query or fragment.
		errs = append(errs, fmt.Errorf("issuer %q must not have a query or fragment", c.Issuer))
	case u.Scheme == "http" && !c.Dev && !isLoopback(u.Hostname()):
		errs = append(errs, fmt.Errorf("issuer %q must use https outside dev mode (http is allowed for localhost)", c.Issuer))
	}
	if c.Addr == "" {
		errs = append(errs, errors.New("addr must be set"))
	}
	if c.Database == "" {
		errs = append(errs, errors.New("database must be set"))
	}
	if c.MasterKey != "" {
		if _, err := DecodeMasterKey(c.MasterKey); err != nil {
			errs = append(errs, err)
		}
	}
	positive := map[string]Duration{
		"access_token_ttl": c.AccessTokenTTL, "id_token_ttl": c.IDTokenTTL, "code_ttl": c.CodeTTL,
		"refresh_idle": c.RefreshIdle, "refresh_absolute": c.RefreshAbsolute, "session_ttl": c.SessionTTL,
		"sweep_interval": c.SweepInterval,
	}
	for _, k := range []string{"access_token_ttl", "id_token_ttl", "code_ttl", "refresh_idle", "refresh_absolute", "session_ttl", "sweep_interval"} {
		if positive[k] <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive", k))
		}
	}
	if c.CodeTTL > Duration(60*time.Second) {
		errs = append(errs, errors.New("code_ttl must be at most 60s (authorization codes are short-lived)"))
	}
	if c.RefreshGrace < 0 || c.RefreshGrace > Duration(time.Minute) {
		errs = append(errs, errors.New("refresh_grace must be between 0s and 60s"))
	}
	if c.ClientCacheTTL < 0 || c.ClientCacheTTL > Duration(time.Minute) {
		errs = append(errs, errors.New("client_cache_ttl must be between 0s and 60s"))
	}
	// The bounds of sqlstore.SetCheckpointInterval.
	if c.SQLiteCheckpointInterval < Duration(250*time.Millisecond) || c.SQLiteCheckpointInterval > Duration(30*time.Second) {
		errs = append(errs, errors.New("sqlite_checkpoint_interval must be between 250ms and 30s"))
	}
	if _, err := DecodeMasterKeys(c.OldMasterKeys); err != nil {
		errs = append(errs, fmt.Errorf("old_master_keys: %w", err))
	}
	if c.ThrottlePerAccount < 0 || c.ThrottlePerAddress < 0 || c.ThrottleClientPerID < 0 || c.ThrottleClientPerAddress < 0 || c.ThrottleWindow <= 0 {
		errs = append(errs, errors.New("throttle limits must not be negative and throttle_window must be positive"))
	}
	if c.AuditRetention < 0 {
		errs = append(errs, errors.New("audit_retention must not be negative (0 keeps events forever)"))
	}
	if c.RefreshIdle > c.RefreshAbsolute {
		errs = append(errs, errors.New("refresh_idle must not exceed refresh_absolute"))
	}
	if !slices.Contains(SigningAlgs, c.SigningAlg) {
		errs = append(errs, fmt.Errorf("signing_alg %q must be RS256, ES256 or EdDSA", c.SigningAlg))
	}
	for _, a := range splitList(c.IDTokenAlgs) {
		if !slices.Contains(SigningAlgs, a) {
			errs = append(errs, fmt.Errorf("id_token_algs: %q must be RS256, ES256 or EdDSA", a))
		}
	}
	switch c.HTTPOrder {
	case "arrival", "goroutine":
	default:
		errs = append(errs, fmt.Errorf("http_order %q must be arrival or goroutine", c.HTTPOrder))
	}
	if c.HTTPWorkers < 0 || c.HTTPWorkers > MaxHTTPWorkers {
		errs = append(errs, fmt.Errorf("http_workers %d must be between 0 (by database) and %d", c.HTTPWorkers, MaxHTTPWorkers))
	}
	switch c.LogFormat {
	case "json", "text":
	default:
		errs = append(errs, fmt.Errorf("log_format %q must be json or text", c.LogFormat))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log_level %q must be debug, info, warn or error", c.LogLevel))
	}
	errs = append(errs, c.validateOperations()...) // admin.go
	return errors.Join(errs...)
}

// SigningAlgs are the JWS algorithms Latchkey signs with, in the order
// KeyAlgorithms lists them.
var SigningAlgs = []string{"RS256", "ES256", "EdDSA"}

// KeyAlgorithms returns the algorithms the server keeps signing keys for:
// signing_alg, RS256 and id_token_algs, each once, in the order of
// SigningAlgs. RS256 is always there because OIDC Core §15.1 requires an
// OP to support RS256 ID tokens, and OIDC Dynamic Client Registration §2
// makes RS256 the default id_token_signed_response_alg: a relying party
// that can only verify RS256 must be servable whatever signing_alg is.
func (c Config) KeyAlgorithms() []string {
	want := append([]string{c.SigningAlg, "RS256"}, splitList(c.IDTokenAlgs)...)
	var out []string
	for _, a := range SigningAlgs {
		if slices.Contains(want, a) {
			out = append(out, a)
		}
	}
	return out
}

// splitList splits a comma-separated setting, dropping blanks.
func splitList(s string) []string {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// DecodeMasterKey decodes a base64 (std or url, padded or not) 32-byte key.
func DecodeMasterKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != 32 {
				return nil, fmt.Errorf("master key must decode to 32 bytes, got %d", len(b))
			}
			return b, nil
		}
	}
	return nil, errors.New("master key must be base64 (generate one with: openssl rand -base64 32)")
}

// DecodeMasterKeys decodes a comma-separated list of master keys (empty
// entries ignored).
func DecodeMasterKeys(s string) ([][]byte, error) {
	var out [][]byte
	for i, part := range strings.Split(s, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		k, err := DecodeMasterKey(part)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		out = append(out, k)
	}
	return out, nil
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1" || strings.HasSuffix(host, ".localhost")
}
