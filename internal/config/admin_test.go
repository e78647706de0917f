package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const goodToken = "0123456789abcdef0123456789abcdef-admin"

func TestValidateOperations(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want string // "" = valid
	}{
		{"admin off by default", func(c *Config) {}, ""},
		{"admin with token", func(c *Config) { c.AdminAddr = "127.0.0.1:9090"; c.AdminToken = goodToken }, ""},
		{"admin with token file", func(c *Config) { c.AdminAddr = "127.0.0.1:9090"; c.AdminTokenFile = "/run/secrets/admin" }, ""},
		{"admin without token", func(c *Config) { c.AdminAddr = "127.0.0.1:9090" }, "admin_token or admin_token_file is required"},
		{"admin on the public address", func(c *Config) { c.AdminAddr = c.Addr; c.AdminToken = goodToken }, "admin_addr must differ from addr"},
		{"short admin token", func(c *Config) { c.AdminAddr = "127.0.0.1:9090"; c.AdminToken = "short" }, "admin_token must be at least 32"},
		{"profiles on the admin listener", func(c *Config) { c.AdminAddr = "127.0.0.1:9090"; c.AdminToken = goodToken; c.AdminPprof = true }, ""},
		{"profiles without an admin listener", func(c *Config) { c.AdminPprof = true }, "admin_pprof needs admin_addr"},
		{"token and file", func(c *Config) { c.AdminToken = goodToken; c.AdminTokenFile = "x" }, "not both"},
		{"webhook", func(c *Config) {
			c.AuditWebhookURL = "https://hooks.example.com/latchkey"
			c.AuditWebhookSecret = goodToken
		}, ""},
		{"webhook on loopback http", func(c *Config) { c.AuditWebhookURL = "http://127.0.0.1:7000/"; c.AuditWebhookSecret = goodToken }, ""},
		{"webhook http elsewhere", func(c *Config) { c.AuditWebhookURL = "http://hooks.example.com/"; c.AuditWebhookSecret = goodToken }, "must use https"},
		{"webhook relative", func(c *Config) { c.AuditWebhookURL = "/hooks"; c.AuditWebhookSecret = goodToken }, "absolute http(s) URL"},
		{"webhook without secret", func(c *Config) { c.AuditWebhookURL = "https://hooks.example.com/" }, "audit_webhook_secret or audit_webhook_secret_file is required"},
		{"short webhook secret", func(c *Config) { c.AuditWebhookURL = "https://hooks.example.com/"; c.AuditWebhookSecret = "x" }, "audit_webhook_secret must be at least 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.edit(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	// Validate lists every problem at once, these included.
	c := Default()
	c.AdminAddr, c.AuditWebhookURL, c.SigningAlg = "127.0.0.1:9090", "ftp://x", "HS256"
	err := c.Validate()
	for _, want := range []string{"admin_token or admin_token_file", "audit_webhook_url", "audit_webhook_secret or", "signing_alg"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, missing %q", err, want)
		}
	}
}

func TestSecretValues(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "token")
	if err := os.WriteFile(good, []byte("  "+goodToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("tiny\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := Default()
	c.AdminTokenFile = good
	if v, err := c.AdminTokenValue(); err != nil || v != goodToken {
		t.Errorf("AdminTokenValue() = %q, %v", v, err)
	}
	c.AdminTokenFile = short
	if _, err := c.AdminTokenValue(); err == nil {
		t.Error("a short token file was accepted")
	}
	c.AdminTokenFile = filepath.Join(dir, "missing")
	if _, err := c.AdminTokenValue(); err == nil || !strings.Contains(err.Error(), "admin_token_file") {
		t.Errorf("missing file: %v", err)
	}
	c = Default()
	if v, err := c.AdminTokenValue(); v != "" || err != nil {
		t.Errorf("unset token: %q, %v", v, err)
	}
	c.AuditWebhookSecretFile = good
	if v, err := c.AuditWebhookSecretValue(); err != nil || v != goodToken {
		t.Errorf("AuditWebhookSecretValue() = %q, %v", v, err)
	}
}
