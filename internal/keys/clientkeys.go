package keys

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-jose/go-jose/v4"
)

// ClientAlgorithms are the JWS algorithms accepted on what clients sign:
// DPoP proofs (RFC 9449) and private_key_jwt client assertions (RFC 7523).
// Asymmetric only: "none" and the HMAC algorithms are never accepted, so a
// public key can never be used as an HMAC secret (algorithm confusion).
var ClientAlgorithms = []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256, jose.PS256}

// MinRSABits is the smallest RSA modulus accepted from a client.
const MinRSABits = 2048

// MaxClientJWKS bounds a registered client key set (bytes of JSON) and
// MaxClientKeys the number of keys in it.
const (
	MaxClientJWKS = 64 << 10
	MaxClientKeys = 16
)

// CheckClientKey accepts a public key a client may sign with: an RSA key
// of at least MinRSABits, an EC P-256 key, or an Ed25519 key. Private and
// symmetric keys are refused.
func CheckClientKey(k *jose.JSONWebKey) error {
	if k == nil || !k.Valid() {
		return errors.New("invalid key")
	}
	if !k.IsPublic() {
		return errors.New("the key must be a public key (no private or symmetric key material)")
	}
	switch pk := k.Key.(type) {
	case *rsa.PublicKey:
		if pk.N.BitLen() < MinRSABits {
			return fmt.Errorf("RSA keys must have at least %d bits", MinRSABits)
		}
	case *ecdsa.PublicKey:
		if pk.Curve != elliptic.P256() {
			return errors.New("EC keys must use P-256 (ES256)")
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("unsupported key type %T", k.Key)
	}
	return nil
}

// ParseClientJWKS parses and checks a client's JSON Web Key Set (RFC 7517
// §5): 1 to MaxClientKeys keys, each accepted by CheckClientKey, with
// distinct key ids when there are several, and any "use" being "sig".
func ParseClientJWKS(s string) (*jose.JSONWebKeySet, error) {
	if len(s) > MaxClientJWKS {
		return nil, fmt.Errorf("the JWKS is larger than %d bytes", MaxClientJWKS)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(s), &set); err != nil {
		return nil, fmt.Errorf("the JWKS is not a valid JSON Web Key Set: %w", err)
	}
	if len(set.Keys) == 0 || len(set.Keys) > MaxClientKeys {
		return nil, fmt.Errorf("the JWKS must hold 1 to %d keys", MaxClientKeys)
	}
	seen := map[string]bool{}
	for i := range set.Keys {
		k := &set.Keys[i]
		if err := CheckClientKey(k); err != nil {
			return nil, fmt.Errorf("JWKS key %d: %w", i, err)
		}
		if k.Use != "" && k.Use != "sig" {
			return nil, fmt.Errorf("JWKS key %d: use %q, want sig", i, k.Use)
		}
		if k.Algorithm != "" && !isClientAlg(k.Algorithm) {
			return nil, fmt.Errorf("JWKS key %d: alg %q is not one of %v", i, k.Algorithm, ClientAlgorithms)
		}
		if len(set.Keys) > 1 {
			if k.KeyID == "" {
				return nil, fmt.Errorf("JWKS key %d: every key needs a kid when there are several", i)
			}
			if seen[k.KeyID] {
				return nil, fmt.Errorf("JWKS key %d: kid %q is used twice", i, k.KeyID)
			}
			seen[k.KeyID] = true
		}
	}
	return &set, nil
}

// ClientAlgNames lists ClientAlgorithms as strings (for discovery:
// dpop_signing_alg_values_supported, token_endpoint_auth_signing_alg_values_supported).
func ClientAlgNames() []string {
	out := make([]string, len(ClientAlgorithms))
	for i, a := range ClientAlgorithms {
		out[i] = string(a)
	}
	return out
}

func isClientAlg(alg string) bool {
	for _, a := range ClientAlgorithms {
		if string(a) == alg {
			return true
		}
	}
	return false
}
