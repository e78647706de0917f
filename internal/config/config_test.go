package config

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// noEnv is a lookup that finds nothing.
func noEnv(string) (string, bool) { return "", false }

// envMap returns a lookup over m.
func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "latchkey.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultsValidate(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	// The documented defaults.
	if c.Issuer != "http://localhost:8080" || c.Addr != ":8080" || c.Database != "latchkey.db" ||
		c.SigningAlg != "ES256" || c.IDTokenAlgs != "" || c.LogFormat != "json" || c.LogLevel != "info" || c.Dev {
		t.Errorf("unexpected defaults: %+v", c)
	}
	if c.CodeTTL.D() != 60*time.Second || c.AccessTokenTTL.D() != 10*time.Minute ||
		c.RefreshIdle.D() != 30*24*time.Hour || c.RefreshAbsolute.D() != 90*24*time.Hour ||
		c.RefreshGrace.D() != 5*time.Second || c.ClientCacheTTL.D() != time.Second {
		t.Errorf("unexpected default durations: %+v", c)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Default()
	c.Issuer = "not a url"
	c.AccessTokenTTL = Duration(-time.Second)
	c.CodeTTL = Duration(61 * time.Second)
	c.SigningAlg = "HS256"
	c.LogFormat = "xml"
	c.LogLevel = "loud"
	c.Addr = ""
	c.Database = ""
	c.RefreshGrace = Duration(2 * time.Minute)
	c.ClientCacheTTL = Duration(-time.Second)
	c.MasterKey = "AAAA"
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate accepted a broken configuration")
	}
	msg := err.Error()
	for _, want := range []string{
		`issuer "not a url" must be an absolute http(s) URL`,
		"access_token_ttl must be positive",
		"code_ttl must be at most 60s",
		`signing_alg "HS256" must be RS256, ES256 or EdDSA`,
		`log_format "xml" must be json or text`,
		`log_level "loud" must be debug, info, warn or error`,
		"addr must be set",
		"database must be set",
		"refresh_grace must be between 0s and 60s",
		"client_cache_ttl must be between 0s and 60s",
		"master key must decode to 32 bytes, got 3",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not mention %q:\n%s", want, msg)
		}
	}
	if n := len(strings.Split(msg, "\n")); n != 11 {
		t.Errorf("got %d problems, want 11:\n%s", n, msg)
	}
}

func TestValidateSingleProblems(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want string // "" = valid
	}{
		{"https issuer", func(c *Config) { c.Issuer = "https://id.example.com" }, ""},
		{"checkpoint interval at its bounds", func(c *Config) { c.SQLiteCheckpointInterval = Duration(250 * time.Millisecond) }, ""},
		{"checkpoint interval at its upper bound", func(c *Config) { c.SQLiteCheckpointInterval = Duration(30 * time.Second) }, ""},
		{"checkpoint interval too short", func(c *Config) { c.SQLiteCheckpointInterval = Duration(100 * time.Millisecond) }, "sqlite_checkpoint_interval must be between 250ms and 30s"},
		{"checkpoint interval too long", func(c *Config) { c.SQLiteCheckpointInterval = Duration(time.Minute) }, "sqlite_checkpoint_interval must be between 250ms and 30s"},
		{"checkpoint interval zero", func(c *Config) { c.SQLiteCheckpointInterval = 0 }, "sqlite_checkpoint_interval must be between 250ms and 30s"},
		{"https issuer with path", func(c *Config) { c.Issuer = "https://example.com/auth" }, ""},
		{"http non-loopback outside dev", func(c *Config) { c.Issuer = "http://id.example.com" }, "must use https outside dev mode"},
		{"http non-loopback in dev", func(c *Config) { c.Issuer = "http://id.example.com"; c.Dev = true }, ""},
		{"http localhost", func(c *Config) { c.Issuer = "http://localhost:9000" }, ""},
		{"http 127.0.0.1", func(c *Config) { c.Issuer = "http://127.0.0.1:9000" }, ""},
		{"http [::1]", func(c *Config) { c.Issuer = "http://[::1]:9000" }, ""},
		{"http *.localhost", func(c *Config) { c.Issuer = "http://auth.localhost" }, ""},
		{"http localhost lookalike", func(c *Config) { c.Issuer = "http://localhost.evil.example" }, "must use https outside dev mode"},
		{"issuer with query", func(c *Config) { c.Issuer = "https://id.example.com/?tenant=1" }, "must not have a query or fragment"},
		{"issuer with fragment", func(c *Config) { c.Issuer = "https://id.example.com/#frag" }, "must not have a query or fragment"},
		{"issuer with empty query", func(c *Config) { c.Issuer = "https://id.example.com/?" }, "must not have a query or fragment"},
		{"issuer with empty fragment", func(c *Config) { c.Issuer = "https://id.example.com/#" }, "must not have a query or fragment"},
		{"query rejected even in dev", func(c *Config) { c.Issuer = "http://localhost/?a=b"; c.Dev = true }, "must not have a query or fragment"},
		{"ftp issuer", func(c *Config) { c.Issuer = "ftp://id.example.com" }, "must be an absolute http(s) URL"},
		{"relative issuer", func(c *Config) { c.Issuer = "/auth" }, "must be an absolute http(s) URL"},
		{"empty issuer", func(c *Config) { c.Issuer = "" }, "must be an absolute http(s) URL"},
		{"zero ttl", func(c *Config) { c.IDTokenTTL = 0 }, "id_token_ttl must be positive"},
		{"zero session ttl", func(c *Config) { c.SessionTTL = 0 }, "session_ttl must be positive"},
		{"zero sweep", func(c *Config) { c.SweepInterval = 0 }, "sweep_interval must be positive"},
		{"code ttl 60s ok", func(c *Config) { c.CodeTTL = Duration(60 * time.Second) }, ""},
		{"code ttl 61s", func(c *Config) { c.CodeTTL = Duration(61 * time.Second) }, "code_ttl must be at most 60s"},
		{"negative grace", func(c *Config) { c.RefreshGrace = Duration(-time.Second) }, "refresh_grace must be between"},
		{"zero grace ok", func(c *Config) { c.RefreshGrace = 0 }, ""},
		{"idle over absolute", func(c *Config) { c.RefreshIdle = Duration(100 * 24 * time.Hour) }, "refresh_idle must not exceed refresh_absolute"},
		{"RS256", func(c *Config) { c.SigningAlg = "RS256" }, ""},
		{"EdDSA", func(c *Config) { c.SigningAlg = "EdDSA" }, ""},
		{"id_token_algs", func(c *Config) { c.IDTokenAlgs = " EdDSA, RS256 ,," }, ""},
		{"id_token_algs HS256", func(c *Config) { c.IDTokenAlgs = "EdDSA,HS256" }, `id_token_algs: "HS256" must be RS256, ES256 or EdDSA`},
		{"id_token_algs lower-case", func(c *Config) { c.IDTokenAlgs = "eddsa" }, `id_token_algs: "eddsa"`},
		{"none alg", func(c *Config) { c.SigningAlg = "none" }, `signing_alg "none"`},
		{"lower-case alg", func(c *Config) { c.SigningAlg = "rs256" }, `signing_alg "rs256"`},
		{"text logs", func(c *Config) { c.LogFormat = "text"; c.LogLevel = "debug" }, ""},
		{"net/http scheduling", func(c *Config) { c.HTTPOrder = "goroutine" }, ""},
		{"unknown http order", func(c *Config) { c.HTTPOrder = "lifo" }, `http_order "lifo" must be arrival or goroutine`},
		{"one http worker", func(c *Config) { c.HTTPWorkers = 1 }, ""},
		{"most http workers", func(c *Config) { c.HTTPWorkers = 1024 }, ""},
		{"http workers per core", func(c *Config) { c.HTTPWorkers = 0 }, ""},
		{"negative http workers", func(c *Config) { c.HTTPWorkers = -1 }, "http_workers -1 must be between 0 (by database) and 1024"},
		{"too many http workers", func(c *Config) { c.HTTPWorkers = 1025 }, "http_workers 1025 must be between 0 (by database) and 1024"},
		{"good master key", func(c *Config) { c.MasterKey = base64.StdEncoding.EncodeToString(make([]byte, 32)) }, ""},
		{"bad master key", func(c *Config) { c.MasterKey = "!!!" }, "master key must be base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.edit(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("accepted, want error containing %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("error %q does not contain %q", err, tt.want)
			case tt.want != "" && strings.Contains(err.Error(), "\n"):
				t.Fatalf("expected exactly one problem, got:\n%v", err)
			}
		})
	}
}

// The algorithms the server keeps keys for: signing_alg, always RS256 (OIDC
// Core §15.1), and id_token_algs, each once, in a fixed order.
func TestKeyAlgorithms(t *testing.T) {
	for _, tt := range []struct {
		signing, extra string
		want           []string
	}{
		{"ES256", "", []string{"RS256", "ES256"}},
		{"RS256", "", []string{"RS256"}},
		{"EdDSA", "", []string{"RS256", "EdDSA"}},
		{"ES256", "EdDSA", []string{"RS256", "ES256", "EdDSA"}},
		{"ES256", " EdDSA , ES256,RS256,", []string{"RS256", "ES256", "EdDSA"}},
		{"RS256", "ES256", []string{"RS256", "ES256"}},
	} {
		c := Default()
		c.SigningAlg, c.IDTokenAlgs = tt.signing, tt.extra
		if got := c.KeyAlgorithms(); !slices.Equal(got, tt.want) {
			t.Errorf("signing_alg %s, id_token_algs %q: KeyAlgorithms %v, want %v", tt.signing, tt.extra, got, tt.want)
		}
	}
	if got := Default().KeyAlgorithms(); !slices.Equal(got, []string{"RS256", "ES256"}) {
		t.Errorf("default KeyAlgorithms %v", got)
	}
}

func TestLoadFile(t *testing.T) {
	p := writeFile(t, `
issuer: https://id.example.com
addr: 127.0.0.1:9000
access_token_ttl: 5m
refresh_idle: 30d
refresh_absolute: 90d
signing_alg: EdDSA
id_token_algs: ES256
dev: true
`)
	c := Default()
	if err := c.Load(p, noEnv); err != nil {
		t.Fatal(err)
	}
	if c.Issuer != "https://id.example.com" || c.Addr != "127.0.0.1:9000" || c.SigningAlg != "EdDSA" || c.IDTokenAlgs != "ES256" || !c.Dev {
		t.Errorf("file values not applied: %+v", c)
	}
	if c.AccessTokenTTL.D() != 5*time.Minute || c.RefreshIdle.D() != 30*24*time.Hour || c.RefreshAbsolute.D() != 90*24*time.Hour {
		t.Errorf("durations: access %v idle %v absolute %v", c.AccessTokenTTL.D(), c.RefreshIdle.D(), c.RefreshAbsolute.D())
	}
	// Untouched values keep their defaults.
	if c.Database != "latchkey.db" || c.CodeTTL.D() != time.Minute {
		t.Errorf("defaults lost: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("loaded config invalid: %v", err)
	}
}

func TestLoadFileErrors(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"unknown key", "issuer: https://a.example\nisuer_typo: x\n", "isuer_typo"},
		{"bad duration", "code_ttl: soon\n", `invalid duration "soon"`},
		{"negative days", "refresh_idle: -3d\n", `invalid duration "-3d"`},
		{"not a mapping", "- a\n- b\n", "config"},
		{"bad bool", "dev: perhaps\n", "config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			err := c.Load(writeFile(t, tt.body), noEnv)
			if err == nil {
				t.Fatalf("accepted %q", tt.body)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestLoadEmptyAndMissingFile(t *testing.T) {
	for _, body := range []string{"", "\n", "# only a comment\n"} {
		c := Default()
		if err := c.Load(writeFile(t, body), noEnv); err != nil {
			t.Errorf("file %q: %v", body, err)
		}
		if c != Default() {
			t.Errorf("file %q changed the config: %+v", body, c)
		}
	}
	c := Default()
	err := c.Load(filepath.Join(t.TempDir(), "missing.yaml"), noEnv)
	if err == nil || !os.IsNotExist(errorsUnwrapAll(err)) {
		t.Errorf("missing file: got %v, want a not-exist error", err)
	}
	// No path: nothing read, nothing changed.
	c = Default()
	if err := c.Load("", noEnv); err != nil || c != Default() {
		t.Errorf("empty path: %v %+v", err, c)
	}
}

func errorsUnwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			return err
		}
		err = u.Unwrap()
	}
}

func TestEnvOverridesFile(t *testing.T) {
	p := writeFile(t, "issuer: https://file.example\naddr: :1111\nrefresh_idle: 10d\ndev: false\n")
	c := Default()
	err := c.Load(p, envMap(map[string]string{
		"LATCHKEY_ISSUER":       "https://env.example",
		"LATCHKEY_REFRESH_IDLE": "30d",
		"LATCHKEY_CODE_TTL":     "45s",
		"LATCHKEY_DEV":          "true",
		"LATCHKEY_UNRELATED":    "x",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Issuer != "https://env.example" {
		t.Errorf("issuer = %q, want the environment's", c.Issuer)
	}
	if c.Addr != ":1111" {
		t.Errorf("addr = %q, want the file's", c.Addr)
	}
	if c.RefreshIdle.D() != 30*24*time.Hour || c.CodeTTL.D() != 45*time.Second || !c.Dev {
		t.Errorf("env not applied: idle %v code %v dev %v", c.RefreshIdle.D(), c.CodeTTL.D(), c.Dev)
	}
}

func TestEnvErrors(t *testing.T) {
	tests := []struct{ name, key, val, want string }{
		{"bad duration", "LATCHKEY_ACCESS_TOKEN_TTL", "ten minutes", `LATCHKEY_ACCESS_TOKEN_TTL: invalid duration "ten minutes"`},
		{"bad bool", "LATCHKEY_DEV", "yes please", `LATCHKEY_DEV: invalid boolean "yes please"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			err := c.Load("", envMap(map[string]string{tt.key: tt.val}))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestEveryFieldHasEnvAndYAMLTags(t *testing.T) {
	// Every setting must be reachable from the file and the environment, and
	// Load must look up every env tag.
	asked := map[string]bool{}
	c := Default()
	if err := c.Load("", func(k string) (string, bool) { asked[k] = true; return "", false }); err != nil {
		t.Fatal(err)
	}
	typ := reflect.TypeOf(Config{})
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		env, yml := f.Tag.Get("env"), f.Tag.Get("yaml")
		if !strings.HasPrefix(env, "LATCHKEY_") || yml == "" {
			t.Errorf("field %s: env tag %q, yaml tag %q", f.Name, env, yml)
			continue
		}
		if want := "LATCHKEY_" + strings.ToUpper(yml); env != want {
			t.Errorf("field %s: env %q does not match yaml %q (want %s)", f.Name, env, yml, want)
		}
		if !asked[env] {
			t.Errorf("Load never looked up %s", env)
		}
	}
	if !asked["LATCHKEY_ISSUER"] || !asked["LATCHKEY_REFRESH_IDLE"] || !asked["LATCHKEY_DEV"] {
		t.Error("core settings not looked up")
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"30d", 30 * 24 * time.Hour, true},
		{"0d", 0, true},
		{"1d", 24 * time.Hour, true},
		{"90s", 90 * time.Second, true},
		{"10m", 10 * time.Minute, true},
		{"720h", 720 * time.Hour, true},
		{"1h30m", 90 * time.Minute, true},
		{"-5m", -5 * time.Minute, true}, // negative Go durations parse; Validate refuses them
		{"106751d", 106751 * 24 * time.Hour, true},
		{"", 0, false},
		{"d", 0, false},
		{"-1d", 0, false},
		{"1.5d", 0, false},
		{"1h1d", 0, false},
		{"30 d", 0, false},
		{"thirty", 0, false},
		{"10", 0, false},
		// Overflow must be an error, not a wrapped-around duration.
		{"106752d", 0, false},
		{"213504d", 0, false},
		{"9223372036854775807d", 0, false},
		{"99999999999999999999d", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if tt.ok && (err != nil || got != tt.want) {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
		if !tt.ok && err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", tt.in, got)
		}
		if !tt.ok && err != nil && !strings.Contains(err.Error(), strconv.Quote(tt.in)) {
			t.Errorf("ParseDuration(%q) error %q does not quote the input", tt.in, err)
		}
	}
}

func TestDurationText(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("2d")); err != nil || d.D() != 48*time.Hour {
		t.Fatalf("UnmarshalText(2d) = %v, %v", d.D(), err)
	}
	b, err := d.MarshalText()
	if err != nil || string(b) != "48h0m0s" {
		t.Errorf("MarshalText = %q, %v", b, err)
	}
	before := d
	if err := d.UnmarshalText([]byte("nope")); err == nil || d != before {
		t.Errorf("bad text: err %v, d changed to %v", err, d)
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"30d", "0d", "1h30m", "90s", "-5m", "106751d", "106752d", "+3d", "1.5d", "d", "", "9223372036854775807d", "1e3d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseDuration(s)
		if err != nil {
			return
		}
		if n, ok := strings.CutSuffix(s, "d"); ok {
			days, aerr := strconv.Atoi(n)
			if aerr != nil {
				t.Fatalf("ParseDuration(%q) accepted a non-integer day count", s)
			}
			if got < 0 || got%(24*time.Hour) != 0 || int64(got/(24*time.Hour)) != int64(days) {
				t.Fatalf("ParseDuration(%q) = %v, not %d days (overflow?)", s, got, days)
			}
			return
		}
		want, werr := time.ParseDuration(s)
		if werr != nil || want != got {
			t.Fatalf("ParseDuration(%q) = %v, time.ParseDuration = %v, %v", s, got, want, werr)
		}
	})
}

func TestDecodeMasterKey(t *testing.T) {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(0xfb + i) // produces '+', '/', '-', '_' in the encodings
	}
	tests := []struct {
		name string
		in   string
		want string // error substring; "" = ok
	}{
		{"std padded", base64.StdEncoding.EncodeToString(key), ""},
		{"std raw", base64.RawStdEncoding.EncodeToString(key), ""},
		{"url padded", base64.URLEncoding.EncodeToString(key), ""},
		{"url raw", base64.RawURLEncoding.EncodeToString(key), ""},
		{"surrounding whitespace (file with newline)", "  " + base64.StdEncoding.EncodeToString(key) + "\n", ""},
		{"16 bytes", base64.StdEncoding.EncodeToString(key[:16]), "must decode to 32 bytes, got 16"},
		{"33 bytes", base64.StdEncoding.EncodeToString(append(key, 1)), "must decode to 32 bytes, got 33"},
		{"empty", "", "must decode to 32 bytes, got 0"},
		{"not base64", "this is not base64!", "master key must be base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeMasterKey(tt.in)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != string(key) {
					t.Fatalf("decoded %x, want %x", got, key)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want error containing %q", err, tt.want)
			}
		})
	}
	// The fixture must really exercise both alphabets.
	if std := base64.StdEncoding.EncodeToString(key); !strings.ContainsAny(std, "+/") {
		t.Fatalf("fixture %q has no std-only characters", std)
	}
}
