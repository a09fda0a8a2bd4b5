"""The origin assertion verifier: is this request's ``X-Preview-Assertion`` valid for this sandbox?

An assertion is a compact JWS the data plane signs with Ed25519 for every request it forwards
(README "Origin assertion"). It is accepted only when all of these hold, else
:class:`AssertionRejectedError` says which failed (its ``reason``; never the assertion itself):

* the header is exactly ``{"alg": "EdDSA", "kid": ..., "typ": "JWT"}`` (``typ`` optional): the
  algorithm is pinned, so ``none``, HS256 with the public key as the secret (alg confusion) or
  any other algorithm is refused before a key is looked up;
* ``kid`` names a key of the data plane's JWKS (Ed25519 ``OKP`` keys only);
* every segment is canonical base64url (no padding, no unused bits set), JSON objects have no
  duplicate names, and the Ed25519 signature verifies;
* ``aud`` is exactly the audience this fleet was configured with;
* ``exp`` has not passed (a leeway of a few seconds at most, for clock skew) and ``iat`` is not
  in the future;
* ``sub`` is the sandbox the request is addressed to (the fleet routes on it): an assertion for
  one sandbox is worth nothing on another;
* the claims are exactly ``aud``, ``cid``, ``exp``, ``iat``, ``jti``, ``scope``, ``sub`` and
  ``tid`` (``tid`` the tenant, ``cid`` the minting credential, ``""`` when the token names
  none: with ``jti``, ``sub`` and ``iat`` they let the fleet check revocations itself), plus
  the optional ``fa`` (a string: the tenant's CSP ``frame-ancestors`` source list, for the
  fleet to set on every response).

A valid assertion must also be the one of the session the edge verified: the edge reads the
session token, not the assertion, and passes the token's ``jti`` on in ``X-Preview-Token-Id``
(:func:`names_session`; the middlewares and the fleet ingress check it on every request).
Otherwise a viewer could pair its session with another token's assertion: an ``interact`` one
beside a ``read`` session, or a live one beside a revoked session.

A *renewal link* (:meth:`OriginAssertionVerifier.verify_renewal`) is the data plane's statement
that the session of token ``prev`` continues under a new token: the new token's assertion claims
plus ``prev``, signed with the same keys under the header ``typ`` :data:`RENEWAL_TYPE` (so a link
is never accepted as an assertion, nor an assertion as a link). The fleet ingress reads links from
the revocation table and keeps a stream opened under ``prev`` open until the new token's ``exp``.

Dependencies: the standard library and ``cryptography``. Thread-safe.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ASSERTION_HEADER = "X-Preview-Assertion"
TOKEN_ID_HEADER = "X-Preview-Token-Id"
ALGORITHM = "EdDSA"
RENEWAL_TYPE = "preview-renewal"
"""The ``typ`` of a renewal link's header (an assertion's is ``JWT``)."""
MAX_ASSERTION_LENGTH = 4096
MAX_LEEWAY_SECONDS = 30
DEFAULT_LEEWAY_SECONDS = 5
SCOPES = frozenset({"read", "interact"})
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
_HEADER_NAMES = frozenset({"alg", "kid", "typ"})
_CLAIM_NAMES = frozenset({"aud", "cid", "exp", "iat", "jti", "scope", "sub", "tid"})
_OPTIONAL_CLAIM_NAMES = frozenset({"fa"})
_TOKEN_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_FRAME_ANCESTORS = re.compile(r"[^;,\"\\\x00-\x1f\x7f]{1,2048}")
_MAX_JWKS_BYTES = 65_536


class AssertionRejectedError(Exception):
    """The request carries no valid assertion for its sandbox; ``reason`` is a short code."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"origin assertion rejected: {reason}")
        self.reason = reason


class JwksUnavailableError(AssertionRejectedError):
    """The key set could not be fetched and no usable copy is cached: every assertion is refused."""

    def __init__(self) -> None:
        super().__init__("jwks_unavailable")


@dataclass(frozen=True)
class OriginAssertion:
    """What a valid assertion says about the request."""

    sandbox_id: str
    scope: str
    """``read`` (view only: drop input) or ``interact``."""
    expires_at: int
    issued_at: int
    token_id: str
    """The preview token's ``jti``: one viewer session."""
    kid: str
    tenant_id: str
    """The tenant that minted the token (``tid``): for tenant-wide revocations."""
    credential_id: str
    """The minting credential's claim (``cid``), ``""`` when the token names none."""
    frame_ancestors: str | None = None
    """The tenant's CSP ``frame-ancestors`` source list (``fa``); ``None`` when not asserted."""


class KeySource(Protocol):
    def key(self, kid: str) -> Ed25519PublicKey | None:
        """The public key ``kid``, or None if the data plane does not publish it."""
        ...

    def available(self) -> bool:
        """Whether assertions can be verified now: a key set is at hand, not too stale (health checks)."""
        ...


def _no_duplicate_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for name, value in pairs:
        if name in document:
            raise ValueError("duplicate name")
        document[name] = value
    return document


def b64url_decode(segment: str) -> bytes:
    """Strict base64url: the alphabet only, no padding, and only the canonical spelling."""
    if not _SEGMENT.fullmatch(segment) or len(segment) % 4 == 1:
        raise ValueError("not base64url")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != segment:
        raise ValueError("not the canonical base64url spelling")
    return raw


def _json_object(segment: str) -> dict[str, Any]:
    try:
        document = json.loads(b64url_decode(segment), object_pairs_hook=_no_duplicate_names)
    except (ValueError, UnicodeDecodeError):
        raise AssertionRejectedError("malformed") from None
    if not isinstance(document, dict):
        raise AssertionRejectedError("malformed")
    return document


def parse_jwks(document: object) -> dict[str, Ed25519PublicKey]:
    """The Ed25519 keys of a JWKS by ``kid``; other keys are ignored, a malformed set raises ValueError."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS")
    keys: dict[str, Ed25519PublicKey] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            continue
        if jwk.get("alg", ALGORITHM) != ALGORITHM or jwk.get("use", "sig") != "sig":
            continue
        kid, x = jwk.get("kid"), jwk.get("x")
        if not isinstance(kid, str) or not kid or not isinstance(x, str):
            continue
        raw = b64url_decode(x)
        if len(raw) != 32:
            raise ValueError("an Ed25519 public key is 32 bytes")
        keys[kid] = Ed25519PublicKey.from_public_bytes(raw)
    return keys


class StaticJwks:
    """A key set given as a JWKS document (e.g. the output of ``preview-tokens origin-key jwks``)."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self._keys = parse_jwks(dict(document))

    def key(self, kid: str) -> Ed25519PublicKey | None:
        return self._keys.get(kid)

    def available(self) -> bool:
        return bool(self._keys)


def _fetch_json(url: str, timeout_seconds: float) -> object:
    if not url.startswith(("https://", "http://")):
        raise ValueError("the JWKS URL must be http(s)")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=timeout_seconds) as response:  # noqa: S310
        body = response.read(_MAX_JWKS_BYTES + 1)
    if len(body) > _MAX_JWKS_BYTES:
        raise ValueError("JWKS too large")
    return json.loads(body)


class HttpJwks:
    """The data plane's JWKS (``GET /api/v1/origin-keys``), fetched and cached.

    * A fetched set is used for ``cache_seconds`` (default 300, as the endpoint's ``max-age``),
      then fetched again.
    * An unknown ``kid`` fetches again at once (a rotated key), at most every
      ``min_refetch_seconds``, so a flood of made-up kids costs the endpoint one call per interval.
    * When a fetch fails the last good set keeps working for at most ``max_stale_seconds``;
      after that, or if no fetch ever worked, every assertion is refused (fail closed).

    A fetch blocks the calling thread for at most ``timeout_seconds``.
    """

    def __init__(
        self,
        url: str,
        *,
        cache_seconds: float = 300,
        min_refetch_seconds: float = 10,
        max_stale_seconds: float = 3600,
        timeout_seconds: float = 3,
        clock: Callable[[], float] = time.monotonic,
        fetch: Callable[[str, float], object] = _fetch_json,
    ) -> None:
        self._url = url
        self._cache_seconds = cache_seconds
        self._min_refetch_seconds = min_refetch_seconds
        self._max_stale_seconds = max_stale_seconds
        self._timeout = timeout_seconds
        self._clock = clock
        self._fetch = fetch
        self._lock = threading.Lock()
        self._keys: dict[str, Ed25519PublicKey] | None = None
        self._fetched_at = 0.0
        self._attempted_at: float | None = None

    def key(self, kid: str) -> Ed25519PublicKey | None:
        with self._lock:
            keys = self._usable_keys(kid)
        if keys is None:
            raise JwksUnavailableError()
        return keys.get(kid)

    def available(self) -> bool:
        """A usable key set, fetched now if there is none or it is due (at most every
        ``min_refetch_seconds``): what a health check reports before any assertion arrives."""
        with self._lock:
            return bool(self._usable_keys())

    def _usable_keys(self, wanted_kid: str | None = None) -> dict[str, Ed25519PublicKey] | None:
        """The key set, fetched again when due or when it lacks ``wanted_kid``; ``None`` when there
        is none or the last good one is older than ``max_stale_seconds``. Under the lock."""
        now = self._clock()
        keys = self._keys
        if (
            keys is None
            or now - self._fetched_at >= self._cache_seconds
            or (wanted_kid is not None and wanted_kid not in keys)
        ):
            self._refresh(now)
        if self._keys is None or now - self._fetched_at >= self._max_stale_seconds:
            return None
        return self._keys

    def _refresh(self, now: float) -> None:
        if self._attempted_at is not None and now - self._attempted_at < self._min_refetch_seconds:
            return
        self._attempted_at = now
        try:
            keys = parse_jwks(self._fetch(self._url, self._timeout))
        except (OSError, ValueError):
            return  # keep the last good set (bounded by max_stale_seconds)
        self._keys, self._fetched_at = keys, now


class OriginAssertionVerifier:
    def __init__(
        self,
        keys: KeySource,
        audience: str,
        *,
        leeway_seconds: int = DEFAULT_LEEWAY_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not audience:
            raise ValueError("the audience is required")
        if not 0 <= leeway_seconds <= MAX_LEEWAY_SECONDS:
            raise ValueError(f"leeway_seconds must be 0..{MAX_LEEWAY_SECONDS}")
        self._keys = keys
        self._audience = audience
        self._leeway = leeway_seconds
        self._clock = clock

    def keys_available(self) -> bool:
        """Whether the origin keys are at hand (a fetch may block for its timeout: not on the loop)."""
        return self._keys.available()

    def verify(self, assertion: str | None, sandbox_id: str) -> OriginAssertion:
        """The assertion's claims if it is valid now for ``sandbox_id``; else raises."""
        claims, kid = self._signed_claims(assertion, "JWT")
        return self._check_claims(claims, kid, sandbox_id)

    def verify_renewal(self, link: str | None) -> tuple[str, OriginAssertion]:
        """``(prev, the new token's assertion)`` of a renewal link valid now; else raises.

        The caller checks the new assertion's sandbox, tenant and scope against the stream's."""
        claims, kid = self._signed_claims(link, RENEWAL_TYPE, typ_required=True)
        previous = claims.pop("prev", None)
        subject = claims.get("sub")
        if not isinstance(previous, str) or not _TOKEN_ID.fullmatch(previous) or not isinstance(subject, str):
            raise AssertionRejectedError("malformed")
        assertion = self._check_claims(claims, kid, subject)
        if previous == assertion.token_id:
            raise AssertionRejectedError("malformed")
        return previous, assertion

    def _signed_claims(
        self, jws: str | None, typ: str, *, typ_required: bool = False
    ) -> tuple[dict[str, Any], str]:
        """The claims of a compact JWS of ``typ`` whose signature verifies, and its ``kid``."""
        if not jws:
            raise AssertionRejectedError("missing")
        if len(jws) > MAX_ASSERTION_LENGTH or not jws.isascii():
            raise AssertionRejectedError("malformed")
        parts = jws.split(".")
        if len(parts) != 3:
            raise AssertionRejectedError("malformed")
        header_segment, payload_segment, signature_segment = parts
        header = _json_object(header_segment)
        presented_typ = header.get("typ", None if typ_required else "JWT")
        if set(header) - _HEADER_NAMES or header.get("alg") != ALGORITHM or presented_typ != typ:
            raise AssertionRejectedError("algorithm")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AssertionRejectedError("unknown_kid")
        key = self._keys.key(kid)
        if key is None:
            raise AssertionRejectedError("unknown_kid")
        try:
            signature = b64url_decode(signature_segment)
            key.verify(signature, f"{header_segment}.{payload_segment}".encode("ascii"))
        except (ValueError, InvalidSignature):
            raise AssertionRejectedError("signature") from None
        return _json_object(payload_segment), kid

    def _check_claims(self, claims: Mapping[str, Any], kid: str, sandbox_id: str) -> OriginAssertion:
        audience, subject = claims.get("aud"), claims.get("sub")
        expires_at, issued_at = claims.get("exp"), claims.get("iat")
        scope, token_id = claims.get("scope"), claims.get("jti")
        tenant_id, credential_id = claims.get("tid"), claims.get("cid")
        if not isinstance(audience, str) or not hmac.compare_digest(
            audience.encode(), self._audience.encode()
        ):
            raise AssertionRejectedError("audience")
        if type(expires_at) is not int or type(issued_at) is not int:
            raise AssertionRejectedError("malformed")
        now = self._clock()
        if now >= expires_at + self._leeway:
            raise AssertionRejectedError("expired")
        if issued_at > now + self._leeway:
            raise AssertionRejectedError("not_yet_valid")
        if not isinstance(subject, str) or not hmac.compare_digest(subject.encode(), sandbox_id.encode()):
            raise AssertionRejectedError("wrong_sandbox")
        if scope not in SCOPES or not isinstance(token_id, str) or not token_id:
            raise AssertionRejectedError("malformed")
        if not isinstance(tenant_id, str) or not tenant_id or not isinstance(credential_id, str):
            raise AssertionRejectedError("malformed")
        if not _CLAIM_NAMES <= set(claims) <= _CLAIM_NAMES | _OPTIONAL_CLAIM_NAMES:
            raise AssertionRejectedError("malformed")
        ancestors = claims.get("fa")
        if ancestors is not None and (
            not isinstance(ancestors, str) or not _FRAME_ANCESTORS.fullmatch(ancestors)
        ):
            raise AssertionRejectedError("malformed")
        return OriginAssertion(
            subject, str(scope), expires_at, issued_at, token_id, kid, tenant_id, credential_id, ancestors
        )


def names_session(assertion: OriginAssertion, token_ids: Sequence[str]) -> bool:
    """Is ``assertion`` the one of the session the edge verified?

    ``token_ids``: every value of the request's ``X-Preview-Token-Id`` (the edge sets exactly one,
    from the verified session token). None, several, or another token's ``jti``: no.
    """
    return len(token_ids) == 1 and hmac.compare_digest(token_ids[0].encode(), assertion.token_id.encode())
