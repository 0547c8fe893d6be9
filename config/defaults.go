package config

// DefaultTokenEndpointPath is server.token_endpoint_path when the key is absent.
const DefaultTokenEndpointPath = "/oauth2/token"
