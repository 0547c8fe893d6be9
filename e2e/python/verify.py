"""The backend matrix's Python side (Debian's python3-jwt and python3-authlib).

For each case read from stdin (one JSON object per line) do what a Python
service does with tokengate's issuer, and print one JSON result line per
case, in order:

  {"op": "verify", "lib": "pyjwt"|"authlib", "issuer", "audience", "token",
   "alg", "typ"}
      discovery document -> jwks_uri -> the library's JWKS support -> verify
      the signature (only alg), iss, aud, exp (required), and the header's
      typ. -> {"ok": true, "claims": {...}}
  {"op": "discover", "issuer"}
      authlib's RFC 8414 and OpenID Discovery metadata validation of both
      well-known documents. -> {"ok": true, "oidc_error": "..." or ""}

A failure is {"ok": false, "error": "Type: message"}. Run with
/usr/bin/python3 (Debian's packages) and AUTHLIB_INSECURE_TRANSPORT=1 for
the tests' plain-http loopback issuer.
"""

import json
import sys
import urllib.parse
import urllib.request

import jwt as pyjwt
from authlib.jose import JsonWebKey, JsonWebToken
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata

_metadata = {}
_jwks = {}


def fetch_json(url):
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


def metadata(issuer):
    if issuer not in _metadata:
        _metadata[issuer] = fetch_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
    return _metadata[issuer]


def check_typ(header, typ):
    if header.get("typ") != typ:
        raise ValueError("typ %r is not %r" % (header.get("typ"), typ))


def verify_pyjwt(c):
    uri = metadata(c["issuer"])["jwks_uri"]
    if uri not in _jwks:
        _jwks[uri] = pyjwt.PyJWKClient(uri)
    key = _jwks[uri].get_signing_key_from_jwt(c["token"])
    check_typ(pyjwt.get_unverified_header(c["token"]), c["typ"])
    claims = pyjwt.decode(
        c["token"],
        key.key,
        algorithms=[c["alg"]],
        audience=c["audience"],
        issuer=c["issuer"],
        options={"require": ["exp", "iat", "iss", "aud"]},
    )
    return {"claims": claims}


def verify_authlib(c):
    keys = JsonWebKey.import_key_set(fetch_json(metadata(c["issuer"])["jwks_uri"]))
    claims = JsonWebToken([c["alg"]]).decode(
        c["token"],
        keys,
        claims_options={
            "iss": {"essential": True, "value": c["issuer"]},
            "aud": {"essential": True, "value": c["audience"]},
            "exp": {"essential": True},
        },
    )
    claims.validate()
    check_typ(claims.header, c["typ"])
    return {"claims": dict(claims)}


def discover(c):
    issuer = c["issuer"]
    oidc = metadata(issuer)
    parsed = urllib.parse.urlsplit(issuer)
    path = parsed.path.rstrip("/")
    rfc8414 = fetch_json("%s://%s/.well-known/oauth-authorization-server%s" % (parsed.scheme, parsed.netloc, path))
    for doc in (oidc, rfc8414):
        if doc.get("issuer") != issuer:
            raise ValueError("issuer %r is not %r" % (doc.get("issuer"), issuer))
        AuthorizationServerMetadata(doc).validate()
    # OpenID Discovery's rules on top: RS256 MUST be listed (for ID tokens,
    # which tokengate never issues); reported, not raised, so the caller
    # decides.
    oidc_error = ""
    try:
        OpenIDProviderMetadata(oidc).validate()
    except ValueError as err:
        oidc_error = str(err)
    return {"oidc_error": oidc_error}


OPS = {
    ("verify", "pyjwt"): verify_pyjwt,
    ("verify", "authlib"): verify_authlib,
    ("discover", None): discover,
}


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        c = json.loads(line)
        try:
            result = dict(ok=True, **OPS[(c["op"], c.get("lib"))](c))
        except Exception as err:  # every failure is a result, never a crash
            result = {"ok": False, "error": "%s: %s" % (type(err).__name__, err)}
        sys.stdout.write(json.dumps(result, default=str) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
