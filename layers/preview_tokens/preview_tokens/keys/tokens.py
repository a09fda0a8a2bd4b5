"""The preview token: ``mp_`` + a compact JWS signed HS256, with the signing key's ``kid``.

Claims: ``aud`` (the sandbox host the token is bound to), ``sub`` (the sandbox id), ``tid``
(the tenant), ``scope``, ``iat``, ``exp``, ``jti`` and ``cid`` (the id of the credential that
minted it, so that revoking that credential can end its tokens; short, see
:func:`credential_claim`). Signing and verification use only the
standard library (hmac, hashlib, base64, json): the authorizer verifies a token on every
request of every embedded preview and must stay cheap to import and to run. The algorithm is
pinned: a header that is not exactly ``{"alg": "HS256", "kid": ..., "typ": "JWT"}`` is refused
before any key is looked up.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

TOKEN_PREFIX = "mp_"
ALGORITHM = "HS256"
MAX_TOKEN_LENGTH = 4096
MAX_TTL_SECONDS = 86_400
SANDBOX_ID_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_-]+$")


class Scope(StrEnum):
    """What a preview token lets the viewer do."""

    READ = "read"
    INTERACT = "interact"


class InvalidTokenError(Exception):
    """Base class: the token is not a valid preview token."""


class MalformedTokenError(InvalidTokenError):
    """The token is not a well-formed preview token."""


class UnsupportedAlgorithmError(InvalidTokenError):
    """The header names another algorithm than HS256."""


class UnknownKeyError(InvalidTokenError):
    """The ``kid`` is not a valid signing key now."""


class BadSignatureError(InvalidTokenError):
    """The signature does not match."""


class ExpiredTokenError(InvalidTokenError):
    """The token was valid but its ``exp`` has passed; ``claims`` are verified."""

    def __init__(self, claims: PreviewClaims) -> None:
        super().__init__("preview token expired")
        self.claims = claims


@dataclass(frozen=True)
class PreviewClaims:
    sandbox_id: str
    tenant_id: str
    host: str
    scope: Scope
    issued_at: int
    expires_at: int
    token_id: str
    credential_id: str = ""
    """``cid``: the minting credential (see :func:`credential_claim`); empty in tokens without one."""

    def to_payload(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "aud": self.host,
            "sub": self.sandbox_id,
            "tid": self.tenant_id,
            "scope": self.scope.value,
            "iat": self.issued_at,
            "exp": self.expires_at,
            "jti": self.token_id,
        }
        if self.credential_id:
            payload["cid"] = self.credential_id
        return payload

    @classmethod
    def from_payload(cls, payload: object) -> PreviewClaims:
        if not isinstance(payload, dict):
            raise MalformedTokenError("payload is not an object")
        try:
            host, sandbox_id, tenant_id = payload["aud"], payload["sub"], payload["tid"]
            scope, issued_at, expires_at, token_id = (
                payload["scope"],
                payload["iat"],
                payload["exp"],
                payload["jti"],
            )
        except KeyError as missing:
            raise MalformedTokenError(f"claim {missing} is missing") from None
        if not all(isinstance(v, str) and v for v in (host, sandbox_id, tenant_id, token_id)):
            raise MalformedTokenError("aud, sub, tid and jti must be non-empty strings")
        if not all(type(v) is int for v in (issued_at, expires_at)):
            raise MalformedTokenError("iat and exp must be integers")
        if scope not in ("read", "interact"):
            raise MalformedTokenError("scope is not read or interact")
        if not SANDBOX_ID_RE.match(sandbox_id) or not host.startswith(sandbox_id + "."):
            raise MalformedTokenError("sub is not a sandbox id bound to aud")
        credential_id = payload.get("cid", "")
        if not isinstance(credential_id, str):
            raise MalformedTokenError("cid must be a string")
        return cls(sandbox_id, tenant_id, host, Scope(scope), issued_at, expires_at, token_id, credential_id)


def new_token_id() -> str:
    return secrets.token_urlsafe(16)


MAX_CREDENTIAL_CLAIM_LENGTH = 40


def credential_claim(credential_id: str) -> str:
    """The ``cid`` claim for a credential id: the id itself (an API key's ``key_...``), or, for a
    long one (a JWT ``sub`` can be any length), ``h:`` + 32 hex digits of its SHA-256, so a token
    stays short and the claim stays a stable key for revoking the credential's tokens."""
    if len(credential_id) <= MAX_CREDENTIAL_CLAIM_LENGTH and credential_id.isascii():
        return credential_id
    return "h:" + hashlib.sha256(credential_id.encode("utf-8")).hexdigest()[:32]


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(segment: str) -> bytes:
    """Bytes of a segment in the canonical base64url encoding, and only that one.

    No padding, and the unused low bits of the last character must be zero: otherwise four
    spellings of one signature (``...A``, ``...B``, ...) would all verify, and a token would not be
    one string (the verified-token memo, revocation by token and logs all rely on that).
    """
    if not _SEGMENT_RE.match(segment) or len(segment) % 4 == 1:
        raise MalformedTokenError("segment is not base64url")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise MalformedTokenError("segment is not base64url") from None
    if _b64encode(raw) != segment:
        raise MalformedTokenError("segment is not canonical base64url")
    return raw


def _json(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise MalformedTokenError("segment is not JSON") from None


def _segment(part: Mapping[str, object]) -> str:
    return _b64encode(json.dumps(part, separators=(",", ":"), sort_keys=True).encode())


def header_segment(kid: str) -> str:
    """The header segment of every token signed with the key ``kid`` (mint writes exactly this)."""
    return _segment({"alg": ALGORITHM, "kid": kid, "typ": "JWT"})


def sign_preview_token(claims: PreviewClaims, kid: str, key: bytes) -> str:
    """Sign ``claims`` with the key ``kid``; returns ``mp_<compact JWS>``."""
    signing_input = f"{header_segment(kid)}.{_segment(claims.to_payload())}"
    signature = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{TOKEN_PREFIX}{signing_input}.{_b64encode(signature)}"


# Header segments already seen to be a valid HS256 header, with their kid. Every token signed
# with one key has the same header segment, so a first-seen token skips decoding it. Bounded:
# only headers that passed ``_header_kid`` get in, and the memo is emptied when full.
_MAX_HEADER_KIDS = 64
_header_kids: dict[str, str] = {}


def _header_kid(header_segment: str) -> str:
    """The ``kid`` of a header segment that is exactly an HS256 JWT header; raises otherwise."""
    header = _json(_b64decode(header_segment))
    if not isinstance(header, dict) or set(header) - {"alg", "kid", "typ"}:
        raise MalformedTokenError("unexpected header")
    if header.get("alg") != ALGORITHM or header.get("typ", "JWT") != "JWT":
        raise UnsupportedAlgorithmError("algorithm is not HS256")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise UnknownKeyError("unknown kid")
    return kid


def verify_preview_token(token: str, keys: Mapping[str, bytes], now: int) -> PreviewClaims:
    """Verify signature and expiry; returns the claims or raises :class:`InvalidTokenError`.

    Binding to the request's host and the scope check are the caller's (see ``access``).
    """
    if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise MalformedTokenError("not a preview token")
    parts = token[len(TOKEN_PREFIX) :].split(".")
    if len(parts) != 3:
        raise MalformedTokenError("not a compact JWS")
    header_segment, payload_segment, signature_segment = parts
    kid = _header_kids.get(header_segment)
    if kid is None:
        kid = _header_kid(header_segment)
        if len(_header_kids) >= _MAX_HEADER_KIDS:
            _header_kids.clear()
        _header_kids[header_segment] = kid
    if kid not in keys:
        raise UnknownKeyError("unknown kid")
    signature = _b64decode(signature_segment)
    expected = hmac.new(
        keys[kid], f"{header_segment}.{payload_segment}".encode("ascii"), hashlib.sha256
    ).digest()
    if not hmac.compare_digest(signature, expected):
        raise BadSignatureError("signature does not match")
    claims = PreviewClaims.from_payload(_json(_b64decode(payload_segment)))
    if claims.expires_at <= now:
        raise ExpiredTokenError(claims)
    return claims


class VerifiedTokenCache:
    """Bounded memo of tokens whose signature already verified, keyed by the token string.

    The same session cookie is presented on every subresource request of a preview, so the
    authorizer verifies it once and afterwards pays a dictionary lookup. Expiry is still
    checked on every hit by the caller, and the cache must be cleared whenever the set of
    valid signing keys changes (a retired key must stop working at once).
    """

    def __init__(self, max_entries: int = 2048) -> None:
        self._entries: OrderedDict[str, PreviewClaims] = OrderedDict()
        self._max_entries = max_entries

    def get(self, token: str) -> PreviewClaims | None:
        return self._entries.get(token)

    def put(self, token: str, claims: PreviewClaims) -> None:
        self._entries[token] = claims
        if len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
