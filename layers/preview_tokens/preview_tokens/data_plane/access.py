"""The data plane's access rule and the token check of the ``?mt=`` authorizer.

:class:`PreviewGate` verifies a token for the exchange route's authorizer: its signature and
``kid``, expiry, the request's host, revocation (the container's
:class:`~preview_tokens.control_plane.revocations.RevocationView`), and signs its origin assertion.
The rest of the rule is decided per request by the edge (the CloudFront Function ``PreviewEdge``,
edge/preview_edge.js, and its Python mirror in the local stack) and the fleet ingress, with the
helpers here: a token's scope allows the method and path (:func:`read_scope_allows`: ``read`` lets
only GET/HEAD/OPTIONS through, no method-override header naming another method, never the input
channel nor a path that could be read as it, :func:`input_path_segments`; ``interact`` lets
everything through), and the data plane's own cookies never reach the origin.
``tests/vectors/edge_access.json`` holds every verifier to the same rule. Standard library only.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from preview_tokens.control_plane.revocations import (
    RevocationView,
)
from preview_tokens.data_plane.origin_assertion import OriginAssertionSigner
from preview_tokens.keys.signing_keys import KeyRing, SigningKeyProvider
from preview_tokens.keys.tokens import (
    ExpiredTokenError,
    InvalidTokenError,
    PreviewClaims,
    VerifiedTokenCache,
    verify_preview_token,
)

SESSION_COOKIE = "__Host-mp_session"
# Not a credential: when the session began to expire (the token's ``exp``). It outlives the
# session cookie, whose Max-Age is exactly the token's remaining life, so a request after expiry
# is told "session expired" (and the embedding page re-mints) rather than "no token".
SESSION_ENDS_COOKIE = "__Host-mp_session_ends"
# The origin assertion the exchange signed for the session's token (``origin_assertion``): the
# edge (PreviewEdge, which cannot sign) forwards it as X-Preview-Assertion when it is this token's.
ORIGIN_ASSERTION_COOKIE = "__Host-mp_origin"
# Every cookie the data plane sets starts with this; none ever reaches the origin (compared
# case-insensitively: browsers treat the __Host- prefix so).
PREVIEW_COOKIE_PREFIX = "__Host-mp_"
PREVIEW_COOKIES = frozenset({SESSION_COOKIE, SESSION_ENDS_COOKIE, ORIGIN_ASSERTION_COOKIE})
_PREFIX_LOWER = PREVIEW_COOKIE_PREFIX.lower()
# The query parameter of a preview link. The edge (CloudFront Function, mirrored locally) takes
# every parameter API Gateway would decode to this name off the query, for every method, and
# passes its value in FALLBACK_TOKEN_HEADER; nothing downstream reads the query for a token.
TOKEN_PARAMETER = "mt"
FALLBACK_TOKEN_HEADER = "X-Preview-Token"
# What the origin receives in FALLBACK_TOKEN_HEADER: a fixed value the integration maps over the
# request's (template.yaml), so neither the edge's nor a client's token gets there.
ORIGIN_FALLBACK_TOKEN_VALUE = "none"
_FALLBACK_TOKEN_HEADER_LOWER = FALLBACK_TOKEN_HEADER.lower()
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Headers with which frameworks (Rails, Laravel, Express' method-override, ASP.NET, ...) let a GET
# or POST act as another method. A read request naming anything but a read method is refused.
METHOD_OVERRIDE_HEADERS = ("x-http-method-override", "x-method-override", "x-http-method")
# Percent-decoding is applied until nothing is left to decode, at most this often (triple encoding
# is decoded; a fourth layer is ambiguous and refused for read).
MAX_PATH_DECODINGS = 3
_PERCENT_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2})+")
# Every character NFKC (Unicode compatibility normalisation, which some servers and frameworks
# apply to paths) maps onto a string with ``.``, ``/``, ``\\``, ``;`` or ``%``, and what it maps to:
# full-width full stop and solidus (U+FF0E, U+FF0F), two dot leader (U+2025), small full stop... A read
# request's path is checked as if they were already what they normalise to (issue 13). The edge's
# JavaScript has no ``normalize``: it carries this same table (``FOLD`` in edge/preview_edge.js; a
# test keeps the two equal, and this one equal to what ``unicodedata`` computes).
NFKC_LOOKALIKES: dict[str, str] = {
    "\u037e": ";", "\u2024": ".", "\u2025": "..", "\u2026": "...", "\u2100": "a/c", "\u2101": "a/s",
    "\u2105": "c/o", "\u2106": "c/u", "\u33c2": "a.m.", "\u33c7": "Co.", "\u33d8": "p.m.", "\ufe14": ";",
    "\ufe19": "...", "\ufe30": "..", "\ufe52": ".", "\ufe54": ";", "\ufe68": "\\", "\ufe6a": "%",
    "\uff05": "%", "\uff0e": ".", "\uff0f": "/", "\uff1b": ";", "\uff3c": "\\", "\U0001f100": "0.",
    **{chr(0x2487 + n): f"{n}." for n in range(1, 21)},
}  # fmt: skip
_LOOKALIKE = re.compile("|".join(re.escape(char) for char in NFKC_LOOKALIKES))
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class DenialReason(StrEnum):
    NO_TOKEN = "no_token"
    INVALID_TOKEN = "invalid_token"
    EXPIRED = "expired"
    WRONG_SANDBOX = "wrong_sandbox"
    READ_ONLY = "read_only"
    REVOKED = "revoked"
    UNAVAILABLE = "unavailable"
    # The session cookie did not come back after the exchange (a browser that blocks it in frames).
    COOKIES_BLOCKED = "cookies_blocked"
    # The sandbox's origin refused the connection or did not answer in time (API Gateway's
    # INTEGRATION_FAILURE / INTEGRATION_TIMEOUT responses).
    ORIGIN_UNREACHABLE = "origin_unreachable"


def normalize_host(host: str) -> str:
    """Lower-case and drop a numeric port; anything else (a trailing dot) is kept as is."""
    host = host.strip().lower()
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and "]" not in port:
        return name
    return host


def fallback_token(headers: Mapping[str, str] | None) -> str | None:
    """The token the edge took off ``?mt=``: the one place that reads ``X-Preview-Token``.

    CloudFront sends header names lower-case and API Gateway keeps them as received; the
    canonical spelling is read too. Any other spelling can only come from a client that
    bypassed the edge, and is ignored (no token) rather than searched for on every request of
    the authorizer's hot path. An absent or empty header is no token; a value the edge marks as
    several or unusable ``mt`` values is kept as is and fails verification (``invalid_token``).
    """
    if not headers:
        return None
    return headers.get(_FALLBACK_TOKEN_HEADER_LOWER) or headers.get(FALLBACK_TOKEN_HEADER) or None


class AmbiguousPathError(ValueError):
    """A path that servers could read in ways we cannot enumerate (control bytes, bad UTF-8, ...)."""


def _decode_percent_run(run: re.Match[str]) -> str:
    try:
        return bytes.fromhex(run[0].replace("%", "")).decode("utf-8")
    except UnicodeDecodeError:
        raise AmbiguousPathError("percent-encoding is not UTF-8") from None


def input_path_segments(path: str) -> list[str | None]:
    """The path's segments as the most lenient server would read them; ``None`` = any segment.

    Every reading a sandbox's server might apply is applied at once, so a read request is checked
    against the union of them (what the origin receives is then outside the input channel
    whatever it does): percent-decoding repeated (up to :data:`MAX_PATH_DECODINGS`), ``\\`` as
    ``/``, ``;`` parameters cut from each segment (``/input;x``, ``..;``), ``.``/``..`` resolved,
    leading and trailing spaces and trailing dots dropped (``/input.``), ASCII case folded, the
    compatibility lookalikes of ``.`` ``/`` ``\\`` ``;`` ``%`` read as those (:data:`NFKC_LOOKALIKES`). A
    segment with a non-ASCII character is a wildcard: Unicode normalisation (NFKC, case folding:
    fullwidth letters, the Kelvin sign) can map it onto ASCII, and the edge's JavaScript has no NFKC.
    Control characters (NUL...), invalid UTF-8 and a fourth encoding layer raise
    :class:`AmbiguousPathError`.
    """
    decoded = path or "/"
    decodings = 0
    while True:
        decoded = _LOOKALIKE.sub(lambda char: NFKC_LOOKALIKES[char[0]], decoded)
        if _CONTROL.search(decoded):
            raise AmbiguousPathError("control character in path")
        if not _PERCENT_RUN.search(decoded):
            break
        if decodings == MAX_PATH_DECODINGS:
            raise AmbiguousPathError("path is encoded too many times")
        decoded = _PERCENT_RUN.sub(_decode_percent_run, decoded)
        decodings += 1
    segments: list[str | None] = []
    for raw in decoded.replace("\\", "/").split("/"):
        segment = raw.split(";", 1)[0]
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        trimmed = segment.strip(" ").rstrip(". ")
        if not trimmed:
            raise AmbiguousPathError("segment of dots and spaces")
        segments.append(trimmed.lower() if trimmed.isascii() else None)
    return segments


def is_under_prefix(segments: Sequence[str | None], prefix: Sequence[str | None]) -> bool:
    if len(segments) < len(prefix):
        return False
    return all(
        segment is None or segment == wanted for segment, wanted in zip(segments, prefix, strict=False)
    )


def read_scope_allows(
    method: str, path: str, method_overrides: Sequence[str], input_prefix: Sequence[str | None]
) -> bool:
    """May a ``read`` token make this request? (``input_prefix`` from :func:`input_path_segments`).

    Only an origin-form path without a ``#``: a browser sends neither an absolute-form target
    (``http://host/input``) nor a fragment, and a server may read either as the path before it
    (``/input#/../x`` as ``/input``), where the segments here would not see the input path."""
    if method.upper() not in READ_METHODS:
        return False
    if not path.startswith("/") or "#" in path:
        return False
    if any(value.strip().upper() not in READ_METHODS for value in method_overrides):
        return False
    try:
        return not is_under_prefix(input_path_segments(path), input_prefix)
    except AmbiguousPathError:
        return False


def set_cookie_name(set_cookie: str) -> str:
    """The cookie name a ``Set-Cookie`` value sets (a value with no ``=`` is a nameless cookie)."""
    pair = set_cookie.split(";", 1)[0]
    return pair.split("=", 1)[0].strip() if "=" in pair else pair.strip()


def is_data_plane_cookie(set_cookie: str) -> bool:
    return set_cookie_name(set_cookie).lower().startswith(_PREFIX_LOWER)


@dataclass(frozen=True)
class PreviewCookies:
    session_token: str | None
    session_ends_at: int | None
    origin_assertion: str | None = None


def split_preview_cookies(cookie_header: str) -> PreviewCookies:
    """The session, its end marker and its origin assertion from a Cookie header (the last of each wins)."""
    values: dict[str, str] = {}
    for part in cookie_header.split(";"):
        name, _, value = part.strip().partition("=")
        if name.strip() in PREVIEW_COOKIES:
            values[name.strip()] = value.strip().strip('"')
    ends_at = values.get(SESSION_ENDS_COOKIE, "")
    return PreviewCookies(
        session_token=values.get(SESSION_COOKIE) or None,
        session_ends_at=int(ends_at) if ends_at.isdigit() and len(ends_at) < 16 else None,
        origin_assertion=values.get(ORIGIN_ASSERTION_COOKIE) or None,
    )


class PreviewGate:
    """Verifies ``?mt=`` tokens for the exchange route's authorizer, with a verified-token memo."""

    def __init__(
        self,
        keys: SigningKeyProvider,
        input_path_prefix: str,
        clock: Callable[[], float] = time.time,
        cache: VerifiedTokenCache | None = None,
        assertions: OriginAssertionSigner | None = None,
        revocations: RevocationView | None = None,
    ) -> None:
        self._keys = keys
        self._assertions = assertions
        self._revocations = revocations
        self._input_prefix = input_path_segments(input_path_prefix)
        self._clock = clock
        self._cache = cache or VerifiedTokenCache()
        self._ring: KeyRing | None = None

    def verify(self, token: str, host: str) -> PreviewClaims:
        """Claims of a token valid now for ``host``; raises InvalidTokenError/HostMismatchError,
        TokenRevokedError, or RevocationsUnavailableError when revocation cannot be ruled out."""
        ring = self._keys.key_ring()
        if ring is not self._ring:
            self._cache.clear()
            self._ring = ring
        now = int(self._clock())
        claims = self._cache.get(token)
        if claims is None:
            claims = verify_preview_token(token, ring.secrets_by_kid, now)
            self._cache.put(token, claims)
        elif claims.expires_at <= now:
            raise ExpiredTokenError(claims)
        if claims.host != normalize_host(host):
            raise HostMismatchError(claims)
        if self._revocations is not None:
            self._revocations.check(claims)
        return claims

    def origin_assertion(self, claims: PreviewClaims) -> str:
        """The origin assertion of a verified token ("" without a signer, e.g. in unit tests).

        Raises :class:`SigningKeyUnavailableError` when the origin keys cannot be used.
        """
        if self._assertions is None:
            return ""
        return self._assertions.assertion_for(claims)

    def renewal_link(self, claims: PreviewClaims, previous_assertion: str) -> tuple[str, str] | None:
        """``(link, previous jti)`` when ``previous_assertion`` is a live assertion of another token of
        the same session's sandbox, tenant and scope (:meth:`OriginAssertionSigner.renewal_link`)."""
        if self._assertions is None:
            return None
        return self._assertions.renewal_link(claims, previous_assertion, self._clock())


class HostMismatchError(InvalidTokenError):
    """A valid token presented on another sandbox's host."""

    def __init__(self, claims: PreviewClaims) -> None:
        super().__init__("token is bound to another host")
        self.claims = claims
