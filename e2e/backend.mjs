// A backend API that verifies bearer tokens with `jose`, the way any Node
// service would: the issuer's discovery document names jwks_uri,
// createRemoteJWKSet fetches the keys, jwtVerify checks the signature, iss,
// exp and that aud holds this API's audience. No verification code of its own.
//
//   node backend.mjs ISSUER AUDIENCE
//
// It listens on 127.0.0.1 on a free port and prints {"port": N}. A request
// with a token it accepts gets 200 and the token's claims; any other 401.
import http from 'node:http';

import { jwtVerify } from 'jose';

import { discoveredKeys } from './keys.mjs';

const [issuer, audience] = process.argv.slice(2);
if (!issuer || !audience) {
  console.error('usage: node backend.mjs ISSUER AUDIENCE');
  process.exit(2);
}

const keys = discoveredKeys(issuer);

const server = http.createServer(async (req, res) => {
  const [scheme, token] = (req.headers.authorization ?? '').split(' ');
  res.setHeader('Content-Type', 'application/json');
  if (scheme !== 'Bearer' || !token) {
    res.writeHead(401).end(JSON.stringify({ error: 'no bearer token' }));
    return;
  }
  let jwks;
  try {
    jwks = await keys();
  } catch (err) {
    res.writeHead(503).end(JSON.stringify({ error: 'issuer keys unavailable', message: err.message }));
    return;
  }
  try {
    const { payload } = await jwtVerify(token, jwks, { issuer, audience });
    res.writeHead(200).end(JSON.stringify({ backend: 'node-jose', path: req.url, claims: payload }));
  } catch (err) {
    res.writeHead(401).end(JSON.stringify({ error: err.code ?? 'invalid token', message: err.message }));
  }
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
