package server

import (
	"net/http"

	"github.com/latchkey-dev/latchkey/internal/httpx"
	"github.com/latchkey-dev/latchkey/internal/keys"
)

// Discovery is the OpenID Provider metadata (OIDC Discovery §3, RFC 8414 §2).
type Discovery struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	UserinfoEndpoint                  string   `json:"userinfo_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint"`
	RevocationAuthMethods             []string `json:"revocation_endpoint_auth_methods_supported"`
	IntrospectionAuthMethods          []string `json:"introspection_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgs      []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	RevocationAuthSigningAlgs         []string `json:"revocation_endpoint_auth_signing_alg_values_supported"`
	IntrospectionAuthSigningAlgs      []string `json:"introspection_endpoint_auth_signing_alg_values_supported"`
	DPoPSigningAlgValuesSupported     []string `json:"dpop_signing_alg_values_supported"`
	ScopesSupported                   []string `json:"scopes_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ResponseModesSupported            []string `json:"response_modes_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	ClaimsSupported                   []string `json:"claims_supported"`
	PromptValuesSupported             []string `json:"prompt_values_supported"`
	ACRValuesSupported                []string `json:"acr_values_supported"`
	AuthorizationResponseISSSupported bool     `json:"authorization_response_iss_parameter_supported"`
	RequestParameterSupported         bool     `json:"request_parameter_supported"`
	RequestURIParameterSupported      bool     `json:"request_uri_parameter_supported"`
	ClaimsParameterSupported          bool     `json:"claims_parameter_supported"`
}

func (s *Server) discovery() Discovery {
	iss := s.issuer
	return Discovery{
		Issuer:                            iss,
		AuthorizationEndpoint:             iss + "/authorize",
		TokenEndpoint:                     iss + "/token",
		UserinfoEndpoint:                  iss + "/userinfo",
		JWKSURI:                           iss + "/jwks",
		RevocationEndpoint:                iss + "/revoke",
		IntrospectionEndpoint:             iss + "/introspect",
		ScopesSupported:                   []string{"openid", "profile", "email", "offline_access"},
		ResponseTypesSupported:            []string{"code"},
		ResponseModesSupported:            []string{"query"},
		GrantTypesSupported:               []string{"authorization_code", "refresh_token"},
		SubjectTypesSupported:             []string{"public"},
		IDTokenSigningAlgValuesSupported:  s.keys.Algorithms(), // signing_alg, RS256 (OIDC Core §15.1) and id_token_algs
		TokenEndpointAuthMethodsSupported: []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"},
		CodeChallengeMethodsSupported:     []string{"S256"},
		RevocationAuthMethods:             []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"},
		IntrospectionAuthMethods:          []string{"client_secret_basic", "client_secret_post", "private_key_jwt"},
		TokenEndpointAuthSigningAlgs:      keys.ClientAlgNames(),
		RevocationAuthSigningAlgs:         keys.ClientAlgNames(),
		IntrospectionAuthSigningAlgs:      keys.ClientAlgNames(),
		DPoPSigningAlgValuesSupported:     keys.ClientAlgNames(),
		ClaimsSupported:                   []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "at_hash", "name", "preferred_username", "email"},
		PromptValuesSupported:             []string{"none", "login", "consent", "select_account"},
		ACRValuesSupported:                []string{"urn:latchkey:acr:password", "urn:latchkey:acr:mfa"},
		AuthorizationResponseISSSupported: true,
	}
}

func (s *Server) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=300")
	httpx.WriteJSONCached(w, http.StatusOK, s.discovery())
}

func (s *Server) serveJWKS(w http.ResponseWriter, r *http.Request) {
	// Short cache: clients must see a newly published key before it signs.
	w.Header().Set("Cache-Control", "public, max-age=60")
	httpx.WriteJSONCached(w, http.StatusOK, s.keys.JWKS(r.Context()))
}
