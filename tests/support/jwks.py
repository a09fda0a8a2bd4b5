"""A throwaway identity provider: RSA and EC keys, a JWKS served on loopback, JWT minting."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://idp.example.test/"
AUDIENCE = "preview-tokens"
TENANT_CLAIM = "https://example.test/tenant"


@dataclass
class IdentityProvider:
    jwks_url: str
    rsa_key: rsa.RSAPrivateKey
    ec_key: ec.EllipticCurvePrivateKey
    published: list[bytes] = field(default_factory=list, repr=False)
    """The JWKS document served now (the last item)."""
    fetches: list[str] = field(default_factory=list)
    """One entry per JWKS request served."""
    outage: list[bool] = field(default_factory=lambda: [False])
    """``outage[0]``: the provider answers every request with a 503 (it is down)."""

    @property
    def down(self) -> bool:
        return self.outage[0]

    @down.setter
    def down(self, value: bool) -> None:
        self.outage[0] = value

    def rotate(self) -> rsa.RSAPrivateKey:
        """Withdraw every key and publish one new RSA key (kid ``rs256-next``); returns it."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.published.append(_jwks([("rs256-next", "RS256", key)]))
        return key

    def token(
        self,
        tenant: str | None = "acme",
        *,
        algorithm: str = "RS256",
        issuer: str = ISSUER,
        audience: str = AUDIENCE,
        expires_in: int = 300,
        extra: dict[str, Any] | None = None,
        scope: str | None = "previews:write",
        key: Any = None,
        kid: str | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": issuer,
            "aud": audience,
            "sub": "user-1",
            "iat": now,
            "exp": now + expires_in,
        }
        if tenant is not None:
            claims[TENANT_CLAIM] = tenant
        if scope is not None:
            claims["scope"] = scope
        claims.update(extra or {})
        key = key or (self.rsa_key if algorithm == "RS256" else self.ec_key)
        return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid or algorithm.lower()})

    def public_pem(self) -> bytes:
        return self.rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def _jwks(provider_keys: list[tuple[str, str, Any]]) -> bytes:
    keys = []
    for kid, alg, key in provider_keys:
        jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key()))
        jwk.update(kid=kid, alg=alg, use="sig")
        keys.append(jwk)
    return json.dumps({"keys": keys}).encode()


@contextmanager
def identity_provider() -> Iterator[IdentityProvider]:
    """Serve a JWKS on 127.0.0.1 for the duration of the block."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    published = [_jwks([("rs256", "RS256", rsa_key), ("es256", "ES256", ec_key)])]
    fetches: list[str] = []
    outage = [False]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetches.append(self.path)
            if outage[0]:
                self.send_error(503)
                return
            body = published[-1]
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield IdentityProvider(
            f"http://127.0.0.1:{server.server_port}/jwks.json", rsa_key, ec_key, published, fetches, outage
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
