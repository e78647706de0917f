package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
)

// MinAdminToken is the shortest admin API token accepted: a guessable
// token would hand out every operator power.
const MinAdminToken = 32

// MinWebhookSecret is the shortest audit webhook signing secret accepted.
const MinWebhookSecret = 32

// validateOperations checks the admin API and audit webhook settings.
func (c *Config) validateOperations() []error {
	var errs []error
	if c.AdminAddr != "" {
		if c.AdminToken == "" && c.AdminTokenFile == "" {
			errs = append(errs, errors.New("admin_token or admin_token_file is required when admin_addr is set"))
		}
		if _, port, _ := net.SplitHostPort(c.AdminAddr); c.AdminAddr == c.Addr && port != "0" { // ":0" picks two free ports
			errs = append(errs, errors.New("admin_addr must differ from addr (the admin API has its own listener)"))
		}
	}
	if c.AdminPprof && c.AdminAddr == "" {
		errs = append(errs, errors.New("admin_pprof needs admin_addr: the profiles are served on the admin listener"))
	}
	if c.AdminToken != "" && c.AdminTokenFile != "" {
		errs = append(errs, errors.New("set admin_token or admin_token_file, not both"))
	}
	if c.AdminToken != "" && len(strings.TrimSpace(c.AdminToken)) < MinAdminToken {
		errs = append(errs, fmt.Errorf("admin_token must be at least %d characters (generate one with: openssl rand -base64 32)", MinAdminToken))
	}
	if c.AuditWebhookURL != "" {
		u, err := url.Parse(c.AuditWebhookURL)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			errs = append(errs, fmt.Errorf("audit_webhook_url %q must be an absolute http(s) URL", c.AuditWebhookURL))
		case u.Scheme == "http" && !c.Dev && !isLoopback(u.Hostname()):
			errs = append(errs, fmt.Errorf("audit_webhook_url %q must use https outside dev mode (http is allowed for localhost)", c.AuditWebhookURL))
		}
		if c.AuditWebhookSecret == "" && c.AuditWebhookSecretFile == "" {
			errs = append(errs, errors.New("audit_webhook_secret or audit_webhook_secret_file is required when audit_webhook_url is set"))
		}
	}
	if c.AuditWebhookSecret != "" && c.AuditWebhookSecretFile != "" {
		errs = append(errs, errors.New("set audit_webhook_secret or audit_webhook_secret_file, not both"))
	}
	if c.AuditWebhookSecret != "" && len(strings.TrimSpace(c.AuditWebhookSecret)) < MinWebhookSecret {
		errs = append(errs, fmt.Errorf("audit_webhook_secret must be at least %d characters", MinWebhookSecret))
	}
	return errs
}

// AdminTokenValue returns the admin token, reading AdminTokenFile when
// AdminToken is empty; "" when neither is set. Surrounding whitespace is
// dropped.
func (c *Config) AdminTokenValue() (string, error) {
	return secretValue("admin_token", c.AdminToken, c.AdminTokenFile, MinAdminToken)
}

// AuditWebhookSecretValue returns the webhook signing secret, reading
// AuditWebhookSecretFile when AuditWebhookSecret is empty.
func (c *Config) AuditWebhookSecretValue() (string, error) {
	return secretValue("audit_webhook_secret", c.AuditWebhookSecret, c.AuditWebhookSecretFile, MinWebhookSecret)
}

func secretValue(name, value, file string, minLen int) (string, error) {
	if value == "" && file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s_file: %w", name, err)
		}
		value = string(b)
	}
	value = strings.TrimSpace(value)
	if value != "" && len(value) < minLen {
		return "", fmt.Errorf("%s must be at least %d characters", name, minLen)
	}
	return value, nil
}
