package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// hmacHex is the documented signature, computed independently of Sign.
func hmacHex(t *testing.T, ts string, body []byte) string {
	t.Helper()
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "." + string(body)))
	return hex.EncodeToString(m.Sum(nil))
}
