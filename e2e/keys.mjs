// The issuer's signing keys, found the way any Node service finds them: the
// discovery document names jwks_uri, and jose's createRemoteJWKSet fetches
// and caches the keys. The lookup runs on first use, so a service may start
// before the issuer does; a failed discovery is tried again on the next call.
import { createRemoteJWKSet } from 'jose';

export function discoveredKeys(issuer) {
  let jwksPromise;
  return function keys() {
    jwksPromise ??= (async () => {
      const res = await fetch(new URL(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`));
      if (!res.ok) {
        throw new Error(`discovery at ${issuer} answered ${res.status}`);
      }
      const { jwks_uri: jwksUri } = await res.json();
      return createRemoteJWKSet(new URL(jwksUri));
    })().catch((err) => {
      jwksPromise = undefined;
      throw err;
    });
    return jwksPromise;
  };
}
