"""The ``?mt=`` exchange: a verified token becomes a host-only session cookie.

The first document request of a preview carries the token in ``?mt=``. At the edge it is
routed to ``EXCHANGE_PATH`` + the original path (CloudFront Function in AWS, the local
gateway locally); the exchange verifies the token for the request's host and redirects to the
same path and query without ``mt``, setting the session cookie for exactly the token's remaining
life, and beside it a marker cookie holding the token's ``exp`` (no credential) that lives
:data:`SESSION_ENDS_MARKER_SECONDS` longer: a request made after expiry carries no token but the
marker, and is answered "session expired" (the page posts ``preview.expired`` so the embedding
page re-mints) instead of "no token".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from preview_tokens.access import (
    SESSION_COOKIE,
    SESSION_ENDS_COOKIE,
    DenialReason,
    HostMismatchError,
    PreviewGate,
)
from preview_tokens.revocations import RevocationsUnavailableError, TokenRevokedError
from preview_tokens.signing_keys import SigningKeyUnavailableError
from preview_tokens.tokens import ExpiredTokenError, InvalidTokenError, PreviewClaims

EXCHANGE_PATH = "/__preview/exchange"
TOKEN_PARAMETER = "mt"
SESSION_ENDS_MARKER_SECONDS = 86_400
_COOKIE_ATTRIBUTES = "Path=/; Secure; HttpOnly; SameSite=None; Partitioned"


@dataclass(frozen=True)
class SessionGrant:
    """Where to send the browser, and the cookie that carries the session there."""

    location: str
    claims: PreviewClaims
    max_age: int

    def set_cookies(self, token: str) -> list[str]:
        """The session cookie, for the token's remaining life, and the session-ends marker."""
        return [
            f"{SESSION_COOKIE}={token}; Max-Age={self.max_age}; {_COOKIE_ATTRIBUTES}",
            f"{SESSION_ENDS_COOKIE}={self.claims.expires_at}; "
            f"Max-Age={self.max_age + SESSION_ENDS_MARKER_SECONDS}; {_COOKIE_ATTRIBUTES}",
        ]


@dataclass(frozen=True)
class ExchangeDenied:
    reason: DenialReason
    sandbox_id: str | None


def redirect_location(path: str, query: Mapping[str, Sequence[str]]) -> str:
    """Same-host path and query without ``mt``; never a protocol-relative or absolute URL."""
    clean_path = "/" + path.replace("\\", "/").lstrip("/")
    encoded_path = quote(clean_path, safe="/:@!$&'()*+,;=-._~")
    kept = [(name, value) for name, values in query.items() if name != TOKEN_PARAMETER for value in values]
    return encoded_path + (f"?{urlencode(kept)}" if kept else "")


def exchange_token(
    gate: PreviewGate,
    token: str | None,
    host: str,
    path: str,
    query: Mapping[str, Sequence[str]],
    clock: Callable[[], float] = time.time,
) -> SessionGrant | ExchangeDenied:
    if not token:
        return ExchangeDenied(DenialReason.NO_TOKEN, None)
    try:
        claims = gate.verify(token, host)
    except (SigningKeyUnavailableError, RevocationsUnavailableError):
        return ExchangeDenied(DenialReason.UNAVAILABLE, None)
    except TokenRevokedError as revoked:
        return ExchangeDenied(DenialReason.REVOKED, revoked.claims.sandbox_id)
    except ExpiredTokenError as expired:
        return ExchangeDenied(DenialReason.EXPIRED, expired.claims.sandbox_id)
    except HostMismatchError:
        return ExchangeDenied(DenialReason.WRONG_SANDBOX, None)
    except InvalidTokenError:
        return ExchangeDenied(DenialReason.INVALID_TOKEN, None)
    max_age = max(1, claims.expires_at - int(clock()))
    return SessionGrant(redirect_location(path, query), claims, max_age)
