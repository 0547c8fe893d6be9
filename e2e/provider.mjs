// node-oidc-provider as the authorization server and RFC 8693 STS of
// tokengate's interop tests. Nothing here verifies tokens for a backend:
// this is the third-party authorization server the gateway talks to.
//
//   node provider.mjs CONFIG.json
//
// It listens on 127.0.0.1 on a free port and prints one JSON line,
// {"issuer": "http://127.0.0.1:PORT"}, once it serves. CONFIG.json:
//
//   {
//     "apis": [{"audience": "https://orders.example.com", "scopes": ["orders:read"]}],
//     "umbrella": "urn:tokengate:umbrella",   // resource of the umbrella API
//     "opaqueUmbrella": "urn:tokengate:opaque", // resource of an opaque umbrella token (optional)
//     "deny": ["https://billing.example.com"],  // audiences it never exchanges for
//     "clients": [ ...node-oidc-provider client metadata... ]
//   }
//
// Umbrella tokens: client_credentials with resource=<umbrella> issues a JWT
// access token whose aud lists every API (formats.customizers.jwt).
// Opaque umbrella tokens: client_credentials with resource=<opaqueUmbrella>
// issues an opaque access token (aud = that resource, every API's scopes),
// which only the introspection endpoint (RFC 7662, and RFC 9701 JWT
// responses for clients with introspection_signed_response_alg) explains.
// Exchange: the token-exchange grant (provider.registerGrantType) checks the
// subject token with the provider's own keys, then issues a JWT access token
// for ONE audience with the requested scopes, which must be scopes of the
// subject token and of that API (downscoping).
//
// GET /test/stats answers {"exchanges": N}: how many exchanges succeeded.
import { readFileSync } from 'node:fs';
import http from 'node:http';

import * as jose from 'jose';
import Provider, { errors } from 'oidc-provider';

const GRANT_TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const TYPE_ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const TYPE_JWT = 'urn:ietf:params:oauth:token-type:jwt';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const apis = new Map(cfg.apis.map((api) => [api.audience, api]));
const allScopes = cfg.apis.flatMap((api) => api.scopes);

// A fresh signing key each run: nothing to ship, nothing to fetch.
const { privateKey, publicKey } = await jose.generateKeyPair('RS256', { extractable: true });
const kid = 'provider-rs256';
const privateJwk = { ...(await jose.exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
const ownKeys = jose.createLocalJWKSet({ keys: [{ ...(await jose.exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' }] });

// Exchanged tokens: what the JWT customizer puts in place of the requesting
// client's identity (the subject's sub and client_id, tokengate as actor).
const exchanged = new WeakMap();
let exchanges = 0;

function resourceServerInfo(resource) {
  if (cfg.opaqueUmbrella && resource === cfg.opaqueUmbrella) {
    return {
      scope: allScopes.join(' '),
      accessTokenFormat: 'opaque',
      accessTokenTTL: 3600,
    };
  }
  if (resource === cfg.umbrella) {
    return {
      scope: allScopes.join(' '),
      accessTokenFormat: 'jwt',
      accessTokenTTL: 3600,
      jwt: { sign: { alg: 'RS256' } },
    };
  }
  const api = apis.get(resource);
  if (!api) {
    throw new errors.InvalidTarget('unknown resource');
  }
  return {
    scope: api.scopes.join(' '),
    accessTokenFormat: 'jwt',
    accessTokenTTL: 300,
    jwt: { sign: { alg: 'RS256' } },
  };
}

const server = http.createServer();
await new Promise((resolve) => { server.listen(0, '127.0.0.1', resolve); });
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: cfg.clients,
  jwks: { keys: [privateJwk] },
  cookies: { keys: ['tokengate-interop-cookie-key'] },
  scopes: ['openid', ...allScopes],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    jwtIntrospection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => cfg.umbrella,
      getResourceServerInfo: (ctx, resource) => resourceServerInfo(resource),
      useGrantedResource: () => true,
    },
  },
  // An opaque client_credentials token has no account: its introspection
  // answer names the client as sub, as RFC 9068 JWTs of that grant do.
  extraTokenClaims(ctx, token) {
    if (cfg.opaqueUmbrella && token.resourceServer?.identifier() === cfg.opaqueUmbrella && !token.accountId) {
      return { sub: token.clientId };
    }
    return undefined;
  },
  formats: {
    customizers: {
      async jwt(ctx, token, jwt) {
        if (token.resourceServer?.identifier() === cfg.umbrella) {
          // The umbrella token: one token for every API.
          jwt.payload.aud = cfg.apis.map((api) => api.audience);
        }
        const ex = exchanged.get(token);
        if (ex) {
          jwt.payload.sub = ex.sub;
          if (ex.client_id) jwt.payload.client_id = ex.client_id;
          jwt.payload.act = ex.act;
        }
      },
    },
  },
});
provider.proxy = false;

provider.registerGrantType(GRANT_TOKEN_EXCHANGE, async (ctx) => {
  const { params, client } = ctx.oidc;
  if (!params.subject_token) {
    throw new errors.InvalidRequest('subject_token is required');
  }
  if (![TYPE_ACCESS_TOKEN, TYPE_JWT].includes(params.subject_token_type)) {
    throw new errors.InvalidRequest('unsupported subject_token_type');
  }
  if (params.requested_token_type && ![TYPE_ACCESS_TOKEN, TYPE_JWT].includes(params.requested_token_type)) {
    throw new errors.InvalidRequest('unsupported requested_token_type');
  }
  let subject;
  try {
    ({ payload: subject } = await jose.jwtVerify(params.subject_token, ownKeys, { issuer, typ: 'at+jwt' }));
  } catch (err) {
    throw new errors.InvalidGrant(`subject_token is not valid (${err.code})`);
  }
  const { audience } = params;
  const api = apis.get(audience);
  if (!audience || !api) {
    throw new errors.InvalidTarget('audience is not an API of this server');
  }
  if (params.resource !== undefined && params.resource !== audience) {
    throw new errors.InvalidTarget('resource, when sent, must equal audience');
  }
  if (cfg.deny.includes(audience) || ![].concat(subject.aud).includes(audience)) {
    throw new errors.InvalidTarget('no token is issued for this audience to this subject token');
  }
  const granted = new Set(String(subject.scope ?? '').split(' ').filter(Boolean));
  const requested = params.scope
    ? params.scope.split(' ')
    : [...granted].filter((s) => api.scopes.includes(s));
  for (const s of requested) {
    if (!granted.has(s) || !api.scopes.includes(s)) {
      throw new errors.InvalidScope('requested scope is not in the subject token or not of this API', s);
    }
  }

  const token = new provider.ClientCredentials({ client, scope: requested.join(' ') || undefined });
  token.resourceServer = new provider.ResourceServer(audience, resourceServerInfo(audience));
  exchanged.set(token, { sub: subject.sub, client_id: subject.client_id, act: { sub: client.clientId } });
  const value = await token.save();
  exchanges += 1;
  ctx.body = {
    access_token: value,
    issued_token_type: TYPE_ACCESS_TOKEN,
    token_type: 'Bearer',
    expires_in: token.expiration,
    scope: token.scope,
  };
}, ['subject_token', 'subject_token_type', 'requested_token_type', 'audience', 'resource', 'scope']);

const handle = provider.callback();
server.on('request', (req, res) => {
  if (req.url === '/test/stats') {
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({ exchanges }));
    return;
  }
  handle(req, res);
});
provider.on('server_error', (ctx, err) => { console.error('server_error', err); });

process.stdout.write(`${JSON.stringify({ issuer })}\n`);
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
