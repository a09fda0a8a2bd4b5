"""The data plane's decision: may this request to a sandbox host reach the sandbox?

Order of checks: a token is present (session cookie, else ``?mt=``), its signature and
``kid`` verify, it has not expired, it is bound to the request's host, and its scope allows
the method and path. ``read`` lets only GET/HEAD/OPTIONS through and never the input
channel; ``interact`` lets everything through. Standard library only (authorizer hot path).
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import unquote

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
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class DenialReason(StrEnum):
    NO_TOKEN = "no_token"
    INVALID_TOKEN = "invalid_token"
    EXPIRED = "expired"
    WRONG_SANDBOX = "wrong_sandbox"
    READ_ONLY = "read_only"
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


def split_session_cookie(cookie_header: str) -> tuple[str | None, str]:
    """Our session token (the last one wins) and the Cookie header without it, for the origin."""
    token: str | None = None
    others: list[str] = []
    for part in cookie_header.split(";"):
        crumb = part.strip()
        if not crumb:
            continue
        name, _, value = crumb.partition("=")
        if name.strip() == SESSION_COOKIE:
            token = value.strip().strip('"')
        else:
            others.append(crumb)
    return token, "; ".join(others)


class PreviewGate:
    """Verifies preview tokens for the authorizer and the exchange, with a verified-token memo."""

    def __init__(
        self,
        keys: SigningKeyProvider,
        input_path_prefix: str,
        clock: Callable[[], float] = time.time,
        cache: VerifiedTokenCache | None = None,
    ) -> None:
        self._keys = keys
        self._input_prefix = normalize_path(input_path_prefix).rstrip("/")
        self._clock = clock
        self._cache = cache or VerifiedTokenCache()
        self._ring: KeyRing | None = None

    def verify(self, token: str, host: str) -> PreviewClaims:
        """Claims of a token valid now for ``host``; raises InvalidTokenError/HostMismatchError."""
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
        return claims

    def authorize(self, request: PreviewRequest) -> Decision:
        cookie_token, origin_cookie = split_session_cookie(request.cookie_header)
        token = cookie_token or request.query_token
        if not token:
            return Decision(False, DenialReason.NO_TOKEN)
        try:
            claims = self.verify(token, request.host)
        except SigningKeyUnavailableError:
            return Decision(False, DenialReason.UNAVAILABLE)
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

    reason = "wrong_sandbox"

    def __init__(self, claims: PreviewClaims) -> None:
        super().__init__("token is bound to another host")
        self.claims = claims
