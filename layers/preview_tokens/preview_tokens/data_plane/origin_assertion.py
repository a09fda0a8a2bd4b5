"""The origin assertion: what the data plane tells the sandbox fleet about a request it forwards.

Every request the data plane forwards carries ``X-Preview-Assertion``: a compact JWS signed
with Ed25519 (``alg`` pinned to ``EdDSA``, the signing key's ``kid`` in the header) whose claims
are ``sub`` (the sandbox id), ``scope``, ``exp`` and ``jti`` (the preview token's own), ``aud``
(the origin's audience, the ``OriginAssertionAudience`` parameter), ``iat`` (the token's
``iat``), ``tid`` (the tenant) and ``cid`` (the minting credential's claim, ``""`` for a token
without one): with ``jti``, ``sub`` and ``iat`` they are what the fleet needs to check the
revocation feed itself for the streams it holds open. Optional ``fa``: the tenant's CSP
``frame-ancestors`` source list (its declared origins, else the stack's default), which the fleet
ingress sets on every response of any status (issue 13: no viewer-response function runs on a
status of 400 or more); absent from assertions signed without a tenant lookup. The fleet
verifies it with the public key alone (package ``preview_origin``), so nothing that can reach
the fleet's ingress can name a sandbox without a statement signed here.

The assertion is a function of the token: same claims, and Ed25519 signatures are
deterministic (RFC 8032), so the exchange and every authorizer instance produce the same bytes
for one token and key. The exchange signs it once and sets it as the ``__Host-mp_origin``
cookie; the authorizer forwards that cookie's assertion when its header names a key that is
active now and its payload is exactly the one this token's claims give (a string comparison: no
signature check here; the fleet checks the signature, and a forged or tampered cookie only gets
its sender a 403 from the fleet). Without such a cookie (the ``X-Preview-Token`` fallback, a
client that drops cookies) the authorizer signs once per token and remembers it. Either way the
already-seen path stays a few dictionary lookups (README "Performance").

Renewal links: when the exchange verifies a new token while the browser still holds the previous
token's assertion (``__Host-mp_origin``) for the same sandbox, tenant and scope, it signs a link
(:meth:`OriginAssertionSigner.renewal_link`): the new token's assertion claims plus ``prev`` (the
previous ``jti``) under the header ``typ`` :data:`RENEWAL_TYPE`. The fleet ingress reads it from
the revocation table and keeps the previous token's streams open until the new ``exp``
(:meth:`preview_tokens.control_plane.revocations.RevocationFeed.record_renewal`). The presented
assertion is checked by signing its header and payload again with its key and comparing (Ed25519
signatures are deterministic): no public-key code on the data plane.

Keys: 32 random bytes from KMS ``GenerateDataKey`` are the Ed25519 private key (its seed). Only
the ciphertext (encryption context ``{"purpose": "origin-assertion-signing", "kid": ...}``) and
the public key are stored, in the signing-keys table under the key set ``origin-assertion``;
the functions that sign decrypt it once per cold start with :mod:`aws_json`, like the token keys.
``cryptography`` is imported only when something is signed (the authorizer's cold start for a
cookie request never pays for it).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from preview_tokens.keys.signing_keys import (
    ACTIVE,
    KeyRing,
    NoSigningKeyError,
    SigningKeyProvider,
    SigningKeyUnavailableError,
)
from preview_tokens.keys.tokens import PreviewClaims

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ASSERTION_HEADER = "X-Preview-Assertion"
ALGORITHM = "EdDSA"
ORIGIN_KEY_SET = "origin-assertion"
ORIGIN_KEY_PURPOSE = "origin-assertion-signing"
ORIGIN_KEY_BYTES = 32
RENEWAL_TYPE = "preview-renewal"
"""A renewal link's header ``typ`` (``preview_origin.verifier.RENEWAL_TYPE``)."""
_SIGNATURE_SEGMENT = re.compile(r"[A-Za-z0-9_-]{86}")  # 64 bytes, unpadded base64url


def origin_key_context(kid: str) -> dict[str, str]:
    """The KMS encryption context of an origin assertion key (the key policy requires the purpose)."""
    return {"purpose": ORIGIN_KEY_PURPOSE, "kid": kid}


def new_origin_kid() -> str:
    return "oa" + time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _segment(document: Mapping[str, object]) -> str:
    return b64url(json.dumps(document, separators=(",", ":"), sort_keys=True).encode())


def _decoded(segment: str) -> Any:
    """The JSON in a base64url segment (raises ``ValueError``)."""
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def header_segment(kid: str, typ: str = "JWT") -> str:
    """The protected header of every assertion (or, ``typ`` :data:`RENEWAL_TYPE`, renewal link)
    signed with ``kid``."""
    return _segment({"alg": ALGORITHM, "kid": kid, "typ": typ})


def assertion_claims(
    claims: PreviewClaims, audience: str, frame_ancestors: str | None = None
) -> dict[str, object]:
    """The assertion's claims for a verified preview token (``fa`` when ``frame_ancestors`` is given)."""
    extra: dict[str, object] = {} if frame_ancestors is None else {"fa": frame_ancestors}
    return {
        **extra,
        "aud": audience,
        "cid": claims.credential_id,
        "exp": claims.expires_at,
        "iat": claims.issued_at,
        "jti": claims.token_id,
        "scope": claims.scope.value,
        "sub": claims.sandbox_id,
        "tid": claims.tenant_id,
    }


def payload_segment(claims: PreviewClaims, audience: str, frame_ancestors: str | None = None) -> str:
    return _segment(assertion_claims(claims, audience, frame_ancestors))


def ed25519_private_key(seed: bytes) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if len(seed) != ORIGIN_KEY_BYTES:
        raise ValueError("an Ed25519 private key is 32 bytes")
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key_of(seed: bytes) -> str:
    """The raw Ed25519 public key of ``seed``, base64url (a JWK's ``x``)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    public = ed25519_private_key(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return b64url(public)


def sign_origin_assertion(
    claims: PreviewClaims, audience: str, kid: str, seed: bytes, frame_ancestors: str | None = None
) -> str:
    """The compact JWS ``header.payload.signature`` for ``claims``, signed with the key ``kid``."""
    signing_input = f"{header_segment(kid)}.{payload_segment(claims, audience, frame_ancestors)}"
    signature = ed25519_private_key(seed).sign(signing_input.encode("ascii"))
    return f"{signing_input}.{b64url(signature)}"


@dataclass(frozen=True)
class PublishedOriginKey:
    kid: str
    public_key: str
    """Raw Ed25519 public key, base64url."""

    def as_jwk(self) -> dict[str, str]:
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": self.public_key,
            "kid": self.kid,
            "alg": ALGORITHM,
            "use": "sig",
        }


def published_origin_keys(items: Iterable[Mapping[str, Any]]) -> list[PublishedOriginKey]:
    """The active keys among stored origin key items (DynamoDB JSON), oldest first.

    Raises ``KeyError``/``TypeError`` on an item that is not shaped like an origin key.
    """
    active = [item for item in items if item["status"]["S"] == ACTIVE]
    active.sort(key=lambda item: (item["created_at"]["S"], item["kid"]["S"]))
    return [PublishedOriginKey(item["kid"]["S"], item["public_key"]["S"]) for item in active]


def origin_jwks(keys: Iterable[PublishedOriginKey]) -> dict[str, list[dict[str, str]]]:
    """The JSON Web Key Set the fleet verifies assertions with (RFC 7517, OKP keys of RFC 8037)."""
    return {"keys": [key.as_jwk() for key in keys]}


@dataclass
class _TokenAssertion:
    payload: str
    signed: str | None = None
    accepted: str | None = None
    """The last presented assertion found to be this token's (a string compare on the hot path)."""


class OriginAssertionSigner:
    """Assertions for verified tokens, computed once per token and kept in a bounded memo.

    ``keys`` is a :class:`SigningKeyProvider` over the origin key set: every active key may have
    signed a presented assertion, the newest signs new ones. The memo is cleared whenever that
    key set changes, so a retired key's assertions stop being forwarded at the next refresh.
    ``frame_ancestors`` (tenant id -> CSP source list) adds the ``fa`` claim; it may raise (a
    store that cannot be read), and then nothing is signed.
    """

    def __init__(
        self,
        keys: SigningKeyProvider,
        audience: str,
        max_entries: int = 2048,
        frame_ancestors: Callable[[str], str] | None = None,
    ) -> None:
        self._keys = keys
        self._audience = audience
        self._frame_ancestors = frame_ancestors
        self._max_entries = max_entries
        self._memo: OrderedDict[str, _TokenAssertion] = OrderedDict()
        self._ring: KeyRing | None = None
        self._headers: dict[str, str] = {}
        """The header segment of each active key's assertions -> its ``kid``."""
        self._private_keys: dict[str, Ed25519PrivateKey] = {}

    def assertion_for(self, claims: PreviewClaims, presented: str | None = None) -> str:
        """The assertion to forward for ``claims``: ``presented`` if it is this token's, else ours.

        Raises :class:`~preview_tokens.keys.signing_keys.SigningKeyUnavailableError` when the origin
        keys cannot be read, or none exists.
        """
        ring = self._current_ring()
        entry = self._entry(claims)
        if presented and (presented == entry.accepted or self._is_assertion_of(presented, entry.payload)):
            entry.accepted = presented
            return presented
        if entry.signed is None:
            entry.signed = self._sign(ring, entry.payload)
        return entry.signed

    def _entry(self, claims: PreviewClaims) -> _TokenAssertion:
        """The token's memo entry (its assertion's payload), made on first sight."""
        entry = self._memo.get(claims.token_id)
        if entry is None:
            ancestors = None if self._frame_ancestors is None else self._frame_ancestors(claims.tenant_id)
            entry = _TokenAssertion(payload_segment(claims, self._audience, ancestors))
            self._memo[claims.token_id] = entry
            if len(self._memo) > self._max_entries:
                self._memo.popitem(last=False)
        return entry

    def _current_ring(self) -> KeyRing:
        """The keys now; what was computed with other keys is dropped when they changed."""
        ring = self._keys.key_ring()
        if ring is not self._ring:
            self._memo.clear()
            self._private_keys.clear()
            self._headers = {header_segment(kid): kid for kid in ring.secrets_by_kid}
            self._ring = ring
        return ring

    def _is_assertion_of(self, presented: str, payload: str) -> bool:
        header, _, rest = presented.partition(".")
        presented_payload, _, signature = rest.partition(".")
        return (
            header in self._headers
            and presented_payload == payload
            and _SIGNATURE_SEGMENT.fullmatch(signature) is not None
        )

    def renewal_link(self, claims: PreviewClaims, presented: str, now: float) -> tuple[str, str] | None:
        """``(link, previous jti)`` when ``presented`` (the browser's ``__Host-mp_origin``) is a live
        assertion of ours, of another token for the same sandbox, tenant and scope as ``claims``
        (verified, not yet expired); else ``None``.

        Raises as :meth:`assertion_for` when the origin keys cannot be read."""
        ring = self._current_ring()
        previous = self._claims_of_ours(ring, presented)
        if previous is None:
            return None
        exp, previous_id = previous.get("exp"), previous.get("jti")
        if (
            previous.get("aud") != self._audience
            or previous.get("sub") != claims.sandbox_id
            or previous.get("tid") != claims.tenant_id
            or previous.get("scope") != claims.scope.value
            or type(exp) is not int
            or exp <= now
            or not isinstance(previous_id, str)
            or not previous_id
            or previous_id == claims.token_id
        ):
            return None
        # The very claims the new token's cookie assertion carries, plus the link.
        document = {**_decoded(self._entry(claims).payload), "prev": previous_id}
        current = ring.current
        if current is None:
            raise NoSigningKeyError("no active origin assertion key")
        signing_input = f"{header_segment(current.kid, RENEWAL_TYPE)}.{_segment(document)}"
        return f"{signing_input}.{self._signature(current.kid, current.secret, signing_input)}", previous_id

    def _claims_of_ours(self, ring: KeyRing, presented: str) -> dict[str, Any] | None:
        """The claims of ``presented`` when one of ``ring``'s keys signed it: its header and payload
        signed again and compared (Ed25519 is deterministic); else ``None``."""
        header, _, rest = presented.partition(".")
        payload, _, signature = rest.partition(".")
        kid = self._headers.get(header)
        secret = ring.secrets_by_kid.get(kid) if kid is not None else None
        if kid is None or secret is None or _SIGNATURE_SEGMENT.fullmatch(signature) is None:
            return None
        if not secrets.compare_digest(self._signature(kid, secret, f"{header}.{payload}"), signature):
            return None
        try:
            claims = _decoded(payload)
        except ValueError:
            return None
        return claims if isinstance(claims, dict) else None

    def _sign(self, ring: KeyRing, payload: str) -> str:
        current = ring.current
        if current is None:
            raise NoSigningKeyError("no active origin assertion key")
        signing_input = f"{header_segment(current.kid)}.{payload}"
        return f"{signing_input}.{self._signature(current.kid, current.secret, signing_input)}"

    def _signature(self, kid: str, secret: bytes, signing_input: str) -> str:
        key = self._private_keys.get(kid)
        if key is None:
            try:
                key = self._private_keys[kid] = ed25519_private_key(secret)
            except ValueError:
                raise SigningKeyUnavailableError("origin assertion key is not an Ed25519 key") from None
        return b64url(key.sign(signing_input.encode("ascii")))
