// The backend matrix's Node side: for each case read from stdin (one JSON
// object per line), do what a Node service or client does with tokengate's
// issuer, and print one JSON result line per case, in order.
//
//   {"op":"verify","issuer":...,"audience":...,"token":...,"alg":"ES256","typ":"at+jwt"}
//     jose: discovery document -> jwks_uri -> createRemoteJWKSet ->
//     jwtVerify (signature, alg, iss, aud, exp, typ). -> {"ok":true,"claims":{...}}
//   {"op":"discover","issuer":...}
//     oauth4webapi's discoveryRequest + processDiscoveryResponse, both the
//     OIDC and the RFC 8414 well-known paths, and openid-client's discovery().
//     -> {"ok":true,"metadata":{...}}
//
// A failure is {"ok":false,"error":"CODE: message"}.
import { createInterface } from 'node:readline';

import { createRemoteJWKSet, jwtVerify } from 'jose';
import * as oauth from 'oauth4webapi';
import * as client from 'openid-client';

const keySets = new Map();

async function jwksFor(issuer) {
  if (!keySets.has(issuer)) {
    const res = await fetch(new URL(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`));
    if (!res.ok) {
      throw new Error(`discovery at ${issuer} answered ${res.status}`);
    }
    const { jwks_uri: jwksUri } = await res.json();
    keySets.set(issuer, createRemoteJWKSet(new URL(jwksUri)));
  }
  return keySets.get(issuer);
}

async function verify(c) {
  const { payload, protectedHeader } = await jwtVerify(c.token, await jwksFor(c.issuer), {
    issuer: c.issuer,
    audience: c.audience,
    algorithms: [c.alg],
    typ: c.typ,
    requiredClaims: ['exp', 'iat'],
  });
  return { claims: payload, header: protectedHeader };
}

async function discover(c) {
  const issuer = new URL(c.issuer);
  const out = {};
  for (const algorithm of ['oidc', 'oauth2']) {
    const res = await oauth.discoveryRequest(issuer, { algorithm, [oauth.allowInsecureRequests]: true });
    out[algorithm] = await oauth.processDiscoveryResponse(issuer, res);
  }
  // openid-client: the relying-party library most Node clients use. The
  // token endpoint needs no client authentication: client.None().
  const config = await client.discovery(issuer, 'backend', undefined, client.None(), {
    execute: [client.allowInsecureRequests],
  });
  const md = config.serverMetadata();
  if (md.jwks_uri !== out.oidc.jwks_uri || md.issuer !== out.oidc.issuer) {
    throw new Error('openid-client and oauth4webapi disagree about the metadata');
  }
  return { metadata: md, oauth2: out.oauth2 };
}

const ops = { verify, discover };

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (line.trim() === '') continue;
  const c = JSON.parse(line);
  let result;
  try {
    result = { ok: true, ...(await ops[c.op](c)) };
  } catch (err) {
    result = { ok: false, error: `${err.code ?? err.name}: ${err.message}` };
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
