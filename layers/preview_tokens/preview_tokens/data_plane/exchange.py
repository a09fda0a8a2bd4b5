"""The ``?mt=`` exchange: a verified token becomes a host-only session cookie.

The first document request of a preview carries the token in ``?mt=``. At the edge it is
routed to ``EXCHANGE_PATH`` + the original path, ``mt`` taken off its query and its value put
in ``X-Preview-Token`` (CloudFront Function in AWS, its mirror locally); the exchange verifies
the token for the request's host and redirects to the same path and query without ``mt``,
setting the session cookie for exactly the token's remaining life (and, as long, the token's
origin assertion, for the edge to forward to the fleet ingress: :mod:`origin_assertion`),
and beside it a marker
cookie holding the token's ``exp`` (no credential) that lives
:data:`SESSION_ENDS_MARKER_SECONDS` longer: a request made after expiry carries no token but the
marker, and is answered "session expired" (the page posts ``preview.expired`` so the embedding
page re-mints) instead of "no token".

The redirect goes through :data:`COOKIE_CHECK_PATH` first: a browser that dropped the cookie
(third-party cookies blocked and no CHIPS: Safari before 26.2, Brave, strict modes) arrives there
without it and is told so (``cookies_blocked``, with "Open in a new tab") instead of reaching the
page and being refused with "no token". With the cookie (or its session-ends marker: the session
may just have ended) the check redirects on to the page. The check reads no key and no token.

Renewal without a reload (issue 14): the embed helper loads a *new* token in a hidden frame of the
same partition at :data:`RENEWAL_EXCHANGE_PATH` (``?mt=`` on the exchange's reserved
:data:`RENEWED_PATH`). The exchange sets the new cookies as for any token, in the cookie jar the
visible preview shares, and its cookie check answers the "renewed" page instead of redirecting: it
posts ``preview.renewed`` with the session-ends marker's ``exp`` it received, so the helper knows the
new cookie is in the jar. The visible document keeps running; its next requests carry the new session.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from preview_tokens.control_plane.revocations import (
    RevocationFeedError,
    RevocationsUnavailableError,
    TokenRevokedError,
)
from preview_tokens.data_plane.access import (
    ORIGIN_ASSERTION_COOKIE,
    SESSION_COOKIE,
    SESSION_ENDS_COOKIE,
    DenialReason,
    HostMismatchError,
    PreviewGate,
    split_preview_cookies,
)
from preview_tokens.data_plane.access import (
    TOKEN_PARAMETER as TOKEN_PARAMETER,  # where the edge takes it from
)
from preview_tokens.keys.signing_keys import RETRY_MAX_SECONDS, SigningKeyUnavailableError
from preview_tokens.keys.tokens import ExpiredTokenError, InvalidTokenError, PreviewClaims
from preview_tokens.observability import RENEWAL_LINKS, count, logger

EXCHANGE_PATH = "/__preview/exchange"
COOKIE_CHECK_PATH = "/__preview/cookie-check"
RENEWED_PATH = "__preview/renewed"
"""The exchange's own page for a renewal (a proxy path under the exchange: never the sandbox's)."""
RENEWAL_EXCHANGE_PATH = f"{EXCHANGE_PATH}/{RENEWED_PATH}"
# Where the edge sends a denied request (any method: a CloudFront Function cannot change it), with
# the reason in DENIAL_HEADER and, when a verified token proved it, the sandbox in DENIAL_SANDBOX_HEADER.
DENIED_PATH = "/__preview/denied"
DENIAL_HEADER = "x-preview-denial"
DENIAL_SANDBOX_HEADER = "x-preview-denial-sandbox"
SESSION_ENDS_MARKER_SECONDS = 86_400
_COOKIE_ATTRIBUTES = "Path=/; Secure; HttpOnly; SameSite=None; Partitioned"


@dataclass(frozen=True)
class SessionGrant:
    """Where to send the browser, and the cookie that carries the session there."""

    location: str
    claims: PreviewClaims
    max_age: int
    origin_assertion: str = field(default="", repr=False)

    def set_cookies(self, token: str) -> list[str]:
        """The session cookie, for the token's remaining life, the session-ends marker, and the
        token's origin assertion with the session cookie's attributes and lifetime."""
        cookies = [
            f"{SESSION_COOKIE}={token}; Max-Age={self.max_age}; {_COOKIE_ATTRIBUTES}",
            f"{SESSION_ENDS_COOKIE}={self.claims.expires_at}; "
            f"Max-Age={self.max_age + SESSION_ENDS_MARKER_SECONDS}; {_COOKIE_ATTRIBUTES}",
        ]
        if self.origin_assertion:
            cookies.append(
                f"{ORIGIN_ASSERTION_COOKIE}={self.origin_assertion}; "
                f"Max-Age={self.max_age}; {_COOKIE_ATTRIBUTES}"
            )
        return cookies


@dataclass(frozen=True)
class ExchangeDenied:
    reason: DenialReason
    sandbox_id: str | None
    retry_after_seconds: float = RETRY_MAX_SECONDS
    """For ``unavailable``: when the key store will be tried again."""


@dataclass(frozen=True)
class SessionRenewed:
    """The cookie check of a renewal: the cookies came back; ``expires_at`` is the session-ends
    marker's value (not a credential), which the helper compares with the token it minted."""

    expires_at: int | None


_ESCAPE = re.compile(r"(%[0-9A-Fa-f]{2})")


def redirect_location(path: str, query: Mapping[str, Sequence[str]]) -> str:
    """Same-host path and query without ``mt``; never a protocol-relative or absolute URL."""
    clean_path = "/" + path.replace("\\", "/").lstrip("/")
    # The path arrives as the browser sent it (API Gateway passes REST path parameters undecoded):
    # its escapes are kept as they are (never %40 -> %2540), anything else unsafe is escaped once.
    encoded_path = "".join(
        part if _ESCAPE.fullmatch(part) else quote(part, safe="/:@!$&'()*+,;=-._~")
        for part in _ESCAPE.split(clean_path)
    )
    kept = [(name, value) for name, values in query.items() if name != TOKEN_PARAMETER for value in values]
    return encoded_path + (f"?{urlencode(kept)}" if kept else "")


def cookie_check_location(location: str) -> str:
    """The cookie check for a same-host ``location`` (``/`` is the bare check path, as on the edge)."""
    path, separator, query = location.partition("?")
    return COOKIE_CHECK_PATH + ("" if path == "/" else path) + separator + query


def check_session_cookie(
    cookie_header: str, path: str, query: Mapping[str, Sequence[str]]
) -> str | SessionRenewed | ExchangeDenied:
    """Where the page is, if the session cookie came back after the exchange; else cookies_blocked.

    For the renewal path the answer is :class:`SessionRenewed` (a page, never a redirect)."""
    cookies = split_preview_cookies(cookie_header)
    if cookies.session_token or cookies.session_ends_at is not None:
        if path.strip("/") == RENEWED_PATH:
            return SessionRenewed(cookies.session_ends_at)
        return redirect_location(path, query)
    return ExchangeDenied(DenialReason.COOKIES_BLOCKED, None)


def verify_exchange_token(
    gate: PreviewGate, token: str | None, host: str
) -> tuple[PreviewClaims, str] | ExchangeDenied:
    """The claims and origin assertion of a token valid now for ``host``, or why it is refused.

    The gate's one verification (pinned algorithm and ``kid``, signature, expiry, host,
    revocation), run by the exchange route's authorizer (:func:`exchange_context`)."""
    if not token:
        return ExchangeDenied(DenialReason.NO_TOKEN, None)
    try:
        claims = gate.verify(token, host)
        assertion = gate.origin_assertion(claims)
    except SigningKeyUnavailableError as unavailable:
        return ExchangeDenied(DenialReason.UNAVAILABLE, None, unavailable.retry_after_seconds)
    except RevocationsUnavailableError:
        return ExchangeDenied(DenialReason.UNAVAILABLE, None)
    except TokenRevokedError as revoked:
        return ExchangeDenied(DenialReason.REVOKED, revoked.claims.sandbox_id)
    except ExpiredTokenError as expired:
        return ExchangeDenied(DenialReason.EXPIRED, expired.claims.sandbox_id)
    except HostMismatchError:
        return ExchangeDenied(DenialReason.WRONG_SANDBOX, None)
    except InvalidTokenError:
        return ExchangeDenied(DenialReason.INVALID_TOKEN, None)
    if not assertion:  # a gate without an origin key signer (miswired): no session could reach the app
        return ExchangeDenied(DenialReason.UNAVAILABLE, claims.sandbox_id)
    return claims, assertion


# The exchange authorizer's context (API Gateway passes it to the exchange as
# ``requestContext.authorizer``; every value a string). A grant: the verified token, its claims
# (JSON of the token's payload) and its origin assertion. A refusal: the reason, the sandbox a
# verified token proved (or ""), and for ``unavailable`` the seconds before the key store is tried again.
CONTEXT_TOKEN = "token"
CONTEXT_CLAIMS = "claims"
CONTEXT_ASSERTION = "origin_assertion"
CONTEXT_REASON = "reason"
CONTEXT_SANDBOX = "sandbox_id"
CONTEXT_RETRY_AFTER = "retry_after"


RenewalRecorder = Callable[[str, str, int, float], None]
"""``(link, previous jti, new exp, now)`` into the renewals feed
(:meth:`~preview_tokens.control_plane.revocations.RevocationFeed.record_renewal`)."""


def exchange_context(
    gate: PreviewGate,
    token: str | None,
    host: str,
    cookie_header: str = "",
    record_renewal: RenewalRecorder | None = None,
) -> dict[str, str]:
    """What the exchange route's authorizer hands the exchange: a grant, or the denial's reason.

    A grant to a browser that still holds another live token's origin assertion for the same
    sandbox, tenant and scope (a renewal in place: the helper's hidden frame shares the visible
    preview's cookie jar) also records a renewal link, so the fleet keeps that token's streams open
    until the new ``exp``. Recording is best effort: when it fails the grant stands and those streams
    end at the previous token's ``exp``, as without renewal."""
    outcome = verify_exchange_token(gate, token, host)
    if isinstance(outcome, ExchangeDenied):
        return denial_context(outcome)
    claims, assertion = outcome
    previous = split_preview_cookies(cookie_header).origin_assertion if cookie_header else None
    if previous and record_renewal is not None:
        _link_renewal(gate, claims, previous, record_renewal)
    return {
        CONTEXT_TOKEN: token or "",
        CONTEXT_CLAIMS: json.dumps(claims.to_payload(), separators=(",", ":"), sort_keys=True),
        CONTEXT_ASSERTION: assertion,
        CONTEXT_SANDBOX: claims.sandbox_id,
    }


def _link_renewal(
    gate: PreviewGate, claims: PreviewClaims, previous: str, record_renewal: RenewalRecorder
) -> None:
    try:
        linked = gate.renewal_link(claims, previous)
        if linked is None:
            return
        link, previous_token_id = linked
        record_renewal(link, previous_token_id, claims.expires_at, time.time())
    except (SigningKeyUnavailableError, RevocationFeedError) as error:
        logger.warning(
            "renewal link not recorded: the previous token's streams end at its exp",
            extra={"error_type": type(error).__name__, "sandbox_id": claims.sandbox_id},
        )
        count(RENEWAL_LINKS, ("Outcome", "not_recorded"))
        return
    count(RENEWAL_LINKS, ("Outcome", "recorded"))
    logger.info(
        "renewal linked",
        extra={
            "sandbox_id": claims.sandbox_id,
            "token_id": claims.token_id,
            "previous_token_id": previous_token_id,
        },
    )


def denial_context(denied: ExchangeDenied) -> dict[str, str]:
    return {
        CONTEXT_REASON: denied.reason.value,
        CONTEXT_SANDBOX: denied.sandbox_id or "",
        CONTEXT_RETRY_AFTER: str(denied.retry_after_seconds),
    }


def _denial_from_context(context: Mapping[str, object]) -> ExchangeDenied:
    try:
        reason = DenialReason(str(context.get(CONTEXT_REASON)))
    except ValueError:
        return ExchangeDenied(DenialReason.INVALID_TOKEN, None)
    sandbox_id = str(context.get(CONTEXT_SANDBOX) or "") or None
    try:
        retry_after = float(str(context.get(CONTEXT_RETRY_AFTER)))
    except ValueError:
        retry_after = RETRY_MAX_SECONDS
    if not math.isfinite(retry_after) or retry_after <= 0:
        retry_after = RETRY_MAX_SECONDS
    return ExchangeDenied(reason, sandbox_id, retry_after)


def grant_from_context(
    context: Mapping[str, object] | None,
    path: str,
    query: Mapping[str, Sequence[str]],
    clock: Callable[[], float] = time.time,
) -> tuple[SessionGrant, str] | ExchangeDenied:
    """The session grant (and the token for its cookie) the authorizer's context allows.

    Fail closed: no context, a context without a verified token or with unreadable claims, or
    claims already expired, is ``invalid_token`` (``expired``); a denial's reason is kept."""
    if not context:
        return ExchangeDenied(DenialReason.INVALID_TOKEN, None)
    if context.get(CONTEXT_REASON):
        return _denial_from_context(context)
    token = context.get(CONTEXT_TOKEN)
    raw_claims = context.get(CONTEXT_CLAIMS)
    if not isinstance(token, str) or not token or not isinstance(raw_claims, str):
        return ExchangeDenied(DenialReason.INVALID_TOKEN, None)
    try:
        claims = PreviewClaims.from_payload(json.loads(raw_claims))
    except (ValueError, TypeError, InvalidTokenError):
        return ExchangeDenied(DenialReason.INVALID_TOKEN, None)
    remaining = claims.expires_at - int(clock())
    if remaining <= 0:
        return ExchangeDenied(DenialReason.EXPIRED, claims.sandbox_id)
    assertion = context.get(CONTEXT_ASSERTION)
    grant = SessionGrant(
        cookie_check_location(redirect_location(path, query)),
        claims,
        remaining,
        assertion if isinstance(assertion, str) else "",
    )
    return grant, token
