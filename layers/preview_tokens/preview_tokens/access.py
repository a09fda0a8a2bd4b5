"""The data plane's decision: may this request to a sandbox host reach the sandbox?

Order of checks: a token is present (session cookie, else ``?mt=``), its signature and
``kid`` verify, it has not expired, it is bound to the request's host, it is not revoked (the
container's :class:`~preview_tokens.revocations.RevocationView`), and its scope allows the
method and path. ``read`` lets only GET/HEAD/OPTIONS through and never the input
channel; ``interact`` lets everything through. Standard library only (authorizer hot path).
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import unquote

from preview_tokens.revocations import RevocationsUnavailableError, RevocationView, TokenRevokedError
from preview_tokens.signing_keys import KeyRing, SigningKeyProvider, SigningKeyUnavailableError
from preview_tokens.tokens import (
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
PREVIEW_COOKIES = frozenset({SESSION_COOKIE, SESSION_ENDS_COOKIE})
# What the origin's Cookie header becomes when the request had no cookie of the app's own. Never
# empty: the integration overwrites the client's Cookie header with this value, and an empty
# mapped value must not let API Gateway fall back to the client's header (session cookie and all).
NO_APP_COOKIES = "mp_no_app_cookies=1"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class DenialReason(StrEnum):
    NO_TOKEN = "no_token"
    INVALID_TOKEN = "invalid_token"
    EXPIRED = "expired"
    WRONG_SANDBOX = "wrong_sandbox"
    READ_ONLY = "read_only"
    REVOKED = "revoked"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class PreviewRequest:
    method: str
    path: str
    host: str
    cookie_header: str
    query_token: str | None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: DenialReason | None = None
    claims: PreviewClaims | None = None
    origin_cookie: str = ""
    retry_later: bool = False
    """Nothing could be decided (the revocation view is too stale): answer 503, not a denial."""


def normalize_host(host: str) -> str:
    """Lower-case and drop a numeric port; anything else (a trailing dot) is kept as is."""
    host = host.strip().lower()
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and "]" not in port:
        return name
    return host


def normalize_path(path: str) -> str:
    """Decode, collapse ``//``, resolve ``.``/``..`` and lower-case, so prefixes can't be dodged."""
    decoded = unquote(unquote(path or "/"))
    normalized = posixpath.normpath("/" + decoded.replace("\\", "/"))
    return ("/" + normalized.lstrip("/")).lower()


@dataclass(frozen=True)
class PreviewCookies:
    session_token: str | None
    session_ends_at: int | None
    origin_cookie: str
    """The request's Cookie header without the data plane's cookies: what the origin may see."""


def split_preview_cookies(cookie_header: str) -> PreviewCookies:
    """Our cookies (the last of each wins) apart from the sandbox app's own."""
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
        else:
            others.append(crumb)
    ends_at = values.get(SESSION_ENDS_COOKIE, "")
    return PreviewCookies(
        session_token=values.get(SESSION_COOKIE) or None,
        session_ends_at=int(ends_at) if ends_at.isdigit() and len(ends_at) < 16 else None,
        origin_cookie="; ".join(others) or NO_APP_COOKIES,
    )


class PreviewGate:
    """Verifies preview tokens for the authorizer and the exchange, with a verified-token memo."""

    def __init__(
        self,
        keys: SigningKeyProvider,
        input_path_prefix: str,
        clock: Callable[[], float] = time.time,
        cache: VerifiedTokenCache | None = None,
        revocations: RevocationView | None = None,
    ) -> None:
        self._keys = keys
        self._revocations = revocations
        self._input_prefix = normalize_path(input_path_prefix).rstrip("/")
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
        cookies = split_preview_cookies(request.cookie_header)
        origin_cookie = cookies.origin_cookie
        token = cookies.session_token or request.query_token
        if not token:
            ended = cookies.session_ends_at is not None and cookies.session_ends_at <= self._clock()
            return Decision(False, DenialReason.EXPIRED if ended else DenialReason.NO_TOKEN)
        try:
            claims = self.verify(token, request.host)
        except SigningKeyUnavailableError:
            return Decision(False, DenialReason.UNAVAILABLE)
        except RevocationsUnavailableError:
            return Decision(False, DenialReason.UNAVAILABLE, retry_later=True)
        except TokenRevokedError as revoked:
            return Decision(False, DenialReason.REVOKED, revoked.claims)
        except ExpiredTokenError as expired:
            return Decision(False, DenialReason.EXPIRED, expired.claims)
        except HostMismatchError:
            return Decision(False, DenialReason.WRONG_SANDBOX)
        except InvalidTokenError:
            return Decision(False, DenialReason.INVALID_TOKEN)
        if claims.scope is Scope.READ and not self._read_allows(request.method, request.path):
            return Decision(False, DenialReason.READ_ONLY, claims)
        return Decision(True, None, claims, origin_cookie)

    def _read_allows(self, method: str, path: str) -> bool:
        if method.upper() not in READ_METHODS:
            return False
        normalized = normalize_path(path)
        return not (normalized == self._input_prefix or normalized.startswith(self._input_prefix + "/"))


class HostMismatchError(InvalidTokenError):
    """A valid token presented on another sandbox's host."""

    def __init__(self, claims: PreviewClaims) -> None:
        super().__init__("token is bound to another host")
        self.claims = claims
