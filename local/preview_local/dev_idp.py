"""A development identity provider: one RSA key, its JWKS, and RS256 JWTs for the demo tenant.

The mint API trusts it exactly as it would trust a real issuer: through ``JWT_ISSUER``,
``JWT_AUDIENCE``, ``JWT_JWKS_URL`` and ``JWT_TENANT_CLAIM``. The key is generated on the first
start and kept in the state directory, so JWTs issued earlier keep verifying after a restart.
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from preview_local.http_messages import HttpRequest, HttpResponse

PATH_PREFIX = "/dev-idp"
JWKS_PATH = f"{PATH_PREFIX}/jwks.json"
AUDIENCE = "preview-tokens-local"
TENANT_CLAIM = "tenant_id"
KEY_FILE = "dev-idp-key.pem"


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class DevIdentityProvider:
    base_url: str
    private_key: rsa.RSAPrivateKey

    @property
    def issuer(self) -> str:
        return self.base_url + PATH_PREFIX

    @property
    def jwks_url(self) -> str:
        return self.base_url + JWKS_PATH

    @property
    def kid(self) -> str:
        numbers = self.private_key.public_key().public_numbers()
        digest = hashlib.sha256(f"{numbers.n}:{numbers.e}".encode()).digest()
        return base64.urlsafe_b64encode(digest[:12]).decode("ascii")

    def jwks(self) -> dict[str, object]:
        numbers = self.private_key.public_key().public_numbers()
        key = {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid}
        return {"keys": [{**key, "n": _b64url_uint(numbers.n), "e": _b64url_uint(numbers.e)}]}

    def issue(
        self, tenant_id: str, scopes: list[str], lifetime_seconds: int, subject: str = "demo-user"
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": subject,
            "iat": now,
            "exp": now + lifetime_seconds,
            TENANT_CLAIM: tenant_id,
            "scope": " ".join(scopes),
        }
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": self.kid})

    def expires_at(self, token: str) -> int:
        """The ``exp`` of a JWT this provider issued; 0 if it is not one (wrong key or issuer)."""
        try:
            claims = jwt.decode(
                token,
                self.private_key.public_key(),
                algorithms=["RS256"],
                audience=AUDIENCE,
                issuer=self.issuer,
            )
        except jwt.InvalidTokenError:
            return 0
        return int(claims["exp"])

    def respond(self, request: HttpRequest) -> HttpResponse:
        if request.method == "GET" and request.path == JWKS_PATH:
            return HttpResponse.json(200, self.jwks())
        return HttpResponse.json(404, {"message": "the dev identity provider serves only its JWKS"})

    @classmethod
    def load_or_create(cls, state_dir: Path, base_url: str) -> DevIdentityProvider:
        path = state_dir / KEY_FILE
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ValueError(f"{path} does not hold an RSA private key")
        else:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            path.touch(mode=0o600)
            path.write_bytes(pem)
        return cls(base_url, key)
