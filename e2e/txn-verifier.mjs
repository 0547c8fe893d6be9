// An internal service that verifies Transaction Tokens with `jose`, the way
// a Node workload in the trust domain would (draft-ietf-oauth-transaction-
// tokens-10, "Txn-Token Validation"): the Txn-Token request header, keys from the
// issuer's discovery document, jwtVerify checking the signature, typ
// txntoken+jwt, iss, exp and that aud is the trust domain.
//
//   node txn-verifier.mjs ISSUER TRUST_DOMAIN
//
// It listens on 127.0.0.1 on a free port and prints {"port": N}. A request
// with a Txn-Token it accepts gets 200 with the token's header and claims,
// the X-Request-Id it received, and whether an Authorization header came
// along; any other 401.
import http from 'node:http';

import { jwtVerify } from 'jose';

import { discoveredKeys } from './keys.mjs';

const [issuer, trustDomain] = process.argv.slice(2);
if (!issuer || !trustDomain) {
  console.error('usage: node txn-verifier.mjs ISSUER TRUST_DOMAIN');
  process.exit(2);
}

const keys = discoveredKeys(issuer);

const server = http.createServer(async (req, res) => {
  res.setHeader('Content-Type', 'application/json');
  const token = req.headers['txn-token'];
  if (typeof token !== 'string' || token === '') {
    res.writeHead(401).end(JSON.stringify({ error: 'no Txn-Token header' }));
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
    const { payload, protectedHeader } = await jwtVerify(token, jwks, {
      issuer,
      audience: trustDomain,
      typ: 'txntoken+jwt',
      requiredClaims: ['iat', 'exp', 'txn', 'sub', 'req_wl'],
    });
    res.writeHead(200).end(JSON.stringify({
      backend: 'node-jose-txn',
      header: protectedHeader,
      claims: payload,
      requestId: req.headers['x-request-id'] ?? '',
      authorization: req.headers.authorization !== undefined,
    }));
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
