"""The data plane's decision: may this request to a sandbox host reach the sandbox?

Order of checks: the query no longer carries ``mt`` (the edge takes it off every request, so
one that still has it did not come through the edge), a token is present (session cookie,
else the ``X-Preview-Token`` header the edge fills from ``?mt=``), its signature and ``kid``
verify, it has not expired, it is bound to the request's host, it is not revoked (the
container's :class:`~preview_tokens.control_plane.revocations.RevocationView`), and its scope allows the
method and path. ``read`` lets only GET/HEAD/OPTIONS through (and no method-override header
naming another method), never the input channel, and no path that could be read as the input
channel (:func:`input_path_segments`); ``interact`` lets everything through. Standard library
only (authorizer hot path). The edge's CloudFront Function ``PreviewEdge`` applies the same rule
in JavaScript (edge/preview_edge.js); ``tests/vectors/edge_access.json`` holds both to it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from preview_tokens.control_plane.revocations import (
    RevocationsUnavailableError,
    RevocationView,
    TokenRevokedError,
)
from preview_tokens.data_plane.origin_assertion import OriginAssertionSigner
from preview_tokens.keys.signing_keys import KeyRing, SigningKeyProvider, SigningKeyUnavailableError
from preview_tokens.keys.tokens import (
    ExpiredTokenError,
    InvalidTokenError,
    PreviewClaims,
    Scope,
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
# What the origin's Cookie header becomes when the request had no cookie of the app's own. Never
# empty: the integration overwrites the client's Cookie header with this value, and an empty
# mapped value must not let API Gateway fall back to the client's header (session cookie and all).
NO_APP_COOKIES = "mp_no_app_cookies=1"
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


@dataclass(frozen=True)
class PreviewRequest:
    method: str
    path: str
    host: str
    cookie_header: str
    fallback_token: str | None
    """``X-Preview-Token``: the ``?mt=`` value the edge took off the query (see :func:`fallback_token`)."""
    query_carries_token: bool = False
    """The query still has ``mt``: the request did not come through the edge."""
    method_overrides: tuple[str, ...] = ()
    """Values of the request's method-override headers (:data:`METHOD_OVERRIDE_HEADERS`)."""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: DenialReason | None = None
    claims: PreviewClaims | None = None
    origin_cookie: str = ""
    origin_assertion: str = ""
    """``X-Preview-Assertion`` for the origin (allowed requests, when the gate has a signer)."""


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


def query_carries_token(multi_value_query: Mapping[str, object] | None) -> bool:
    """Whether API Gateway decoded a ``mt`` parameter from the query (its names are decoded)."""
    return multi_value_query is not None and TOKEN_PARAMETER in multi_value_query


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
    """May a ``read`` token make this request? (``input_prefix`` from :func:`input_path_segments`)."""
    if method.upper() not in READ_METHODS:
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
    origin_cookie: str
    """The request's Cookie header without the data plane's cookies: what the origin may see."""
    origin_assertion: str | None = None


def split_preview_cookies(cookie_header: str) -> PreviewCookies:
    """Our cookies (the last of each wins) apart from the sandbox app's own.

    Every ``__Host-mp_*`` name is ours and is dropped from what the origin sees, known or not.
    """
    values: dict[str, str] = {}
    others: list[str] = []
    for part in cookie_header.split(";"):
        crumb = part.strip()
        if not crumb:
            continue
        name, _, value = crumb.partition("=")
        name = name.strip()
        if name in PREVIEW_COOKIES:
            values[name] = value.strip().strip('"')
        elif name[: len(PREVIEW_COOKIE_PREFIX)].lower() != _PREFIX_LOWER:
            others.append(crumb)
    ends_at = values.get(SESSION_ENDS_COOKIE, "")
    return PreviewCookies(
        session_token=values.get(SESSION_COOKIE) or None,
        session_ends_at=int(ends_at) if ends_at.isdigit() and len(ends_at) < 16 else None,
        origin_cookie="; ".join(others) or NO_APP_COOKIES,
        origin_assertion=values.get(ORIGIN_ASSERTION_COOKIE) or None,
    )


class PreviewGate:
    """Verifies preview tokens for the authorizer and the exchange, with a verified-token memo."""

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

    def authorize(self, request: PreviewRequest) -> Decision:
        if request.query_carries_token:
            return Decision(False, DenialReason.INVALID_TOKEN)
        cookies = split_preview_cookies(request.cookie_header)
        origin_cookie = cookies.origin_cookie
        token = cookies.session_token or request.fallback_token
        if not token:
            ended = cookies.session_ends_at is not None and cookies.session_ends_at <= self._clock()
            return Decision(False, DenialReason.EXPIRED if ended else DenialReason.NO_TOKEN)
        try:
            claims = self.verify(token, request.host)
        except SigningKeyUnavailableError:
            return Decision(False, DenialReason.UNAVAILABLE)
        except RevocationsUnavailableError:
            return Decision(False, DenialReason.UNAVAILABLE)  # nothing decided: the authorizer's 503
        except TokenRevokedError as revoked:
            return Decision(False, DenialReason.REVOKED, revoked.claims)
        except ExpiredTokenError as expired:
            return Decision(False, DenialReason.EXPIRED, expired.claims)
        except HostMismatchError:
            return Decision(False, DenialReason.WRONG_SANDBOX)
        except InvalidTokenError:
            return Decision(False, DenialReason.INVALID_TOKEN)
        if claims.scope is Scope.READ and not read_scope_allows(
            request.method, request.path, request.method_overrides, self._input_prefix
        ):
            return Decision(False, DenialReason.READ_ONLY, claims)
        try:
            assertion = self.origin_assertion(claims, cookies.origin_assertion)
        except SigningKeyUnavailableError:
            return Decision(False, DenialReason.UNAVAILABLE, claims)
        return Decision(True, None, claims, origin_cookie, assertion)

    def origin_assertion(self, claims: PreviewClaims, presented: str | None = None) -> str:
        """The origin assertion of a verified token ("" without a signer, e.g. in unit tests).

        Raises :class:`SigningKeyUnavailableError` when the origin keys cannot be used.
        """
        if self._assertions is None:
            return ""
        return self._assertions.assertion_for(claims, presented)


class HostMismatchError(InvalidTokenError):
    """A valid token presented on another sandbox's host."""

    def __init__(self, claims: PreviewClaims) -> None:
        super().__init__("token is bound to another host")
        self.claims = claims
