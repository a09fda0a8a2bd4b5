"""The stream edge, as CloudFront runs it in AWS (``PreviewStreamVerifier`` in template.yaml).

CloudFront sends a request whose path matches one of ``StreamPathPatterns`` (a "cache behaviour",
:func:`is_stream_path`) to the stream ingress, after a viewer-request function decided on it:
the session cookie verified with the key ``key.<kid>`` from the KeyValueStore, its expiry, host
binding and, for ``read``, the input-path rule. This is that function in Python for the local
stack, built from the same pieces as the authorizer (:mod:`preview_tokens.keys.tokens`,
:mod:`preview_tokens.data_plane.access`); the shared vectors run through it, the authorizer and the function.

``edge_key`` reads the KeyValueStore (contract: ``key.<kid>`` -> the HS256 key, base64url,
present only while the key verifies).
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

from preview_tokens.data_plane.access import (
    METHOD_OVERRIDE_HEADERS,
    DenialReason,
    input_path_segments,
    normalize_host,
    read_scope_allows,
    split_preview_cookies,
)
from preview_tokens.data_plane.exchange import TOKEN_PARAMETER
from preview_tokens.keys.tokens import (
    ExpiredTokenError,
    InvalidTokenError,
    PreviewClaims,
    Scope,
    verify_preview_token,
)

from preview_local.edge import EdgeKeys
from preview_local.http_messages import HttpRequest, HttpResponse
from preview_local.streams import StreamRelay, request_head

EdgeKeyReader = Callable[[str], str | None]
ORIGIN_ASSERTION_COOKIE = "__Host-mp_origin"
OUR_COOKIE_PREFIX = "__Host-mp_"
# Headers only the edge may set: whatever the client sent under these names is removed first.
TRUSTED_HEADERS = (
    "x-preview-assertion",
    "x-sandbox-id",
    "x-preview-scope",
    "x-preview-expires",
    "x-preview-token",
)
_STATUS = {
    DenialReason.NO_TOKEN: 401,
    DenialReason.EXPIRED: 401,
    DenialReason.UNAVAILABLE: 503,
}


def is_stream_path(path: str, patterns: Sequence[str]) -> bool:
    """Whether CloudFront's behaviour for ``path`` is a stream one (``*`` any characters, ``?`` one)."""
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns if pattern)


@dataclass(frozen=True)
class StreamDecision:
    allowed: bool
    reason: DenialReason | None = None
    claims: PreviewClaims | None = None
    forward_headers: tuple[tuple[str, str], ...] = field(default=())
    """The request's headers as the stream ingress gets them (allowed requests only)."""
    forward_query: str = ""

    @property
    def status(self) -> int:
        return 200 if self.allowed else _STATUS.get(self.reason or DenialReason.INVALID_TOKEN, 403)


class StreamEdge:
    def __init__(
        self, edge_key: EdgeKeyReader, input_path_prefix: str, clock: Callable[[], float] = time.time
    ) -> None:
        self._keys = EdgeKeys(edge_key)
        self._input_prefix = input_path_segments(input_path_prefix)
        self._clock = clock

    def decide(
        self, method: str, path: str, query: str, host: str, headers: Sequence[tuple[str, str]]
    ) -> StreamDecision:
        cookie_header = "; ".join(value for name, value in headers if name.lower() == "cookie")
        cookies = split_preview_cookies(cookie_header)
        now = int(self._clock())
        if not cookies.session_token:
            ended = cookies.session_ends_at is not None and cookies.session_ends_at <= now
            return StreamDecision(False, DenialReason.EXPIRED if ended else DenialReason.NO_TOKEN)
        try:
            claims = verify_preview_token(cookies.session_token, self._keys, now)
        except ExpiredTokenError as expired:
            return StreamDecision(False, DenialReason.EXPIRED, expired.claims)
        except InvalidTokenError:
            return StreamDecision(False, DenialReason.INVALID_TOKEN)
        if claims.host != normalize_host(host):
            return StreamDecision(False, DenialReason.WRONG_SANDBOX, claims)
        overrides = [value for name, value in headers if name.lower() in METHOD_OVERRIDE_HEADERS]
        if claims.scope is Scope.READ and not read_scope_allows(method, path, overrides, self._input_prefix):
            return StreamDecision(False, DenialReason.READ_ONLY, claims)
        assertion = _origin_assertion(cookie_header, claims)
        if assertion is None:
            return StreamDecision(False, DenialReason.INVALID_TOKEN, claims)
        return StreamDecision(True, None, claims, _forwarded(headers, claims, assertion), _without_mt(query))


def _cookie_values(cookie_header: str, name: str) -> list[str]:
    found = []
    for crumb in cookie_header.split(";"):
        key, _, value = crumb.strip().partition("=")
        if key.strip() == name:
            found.append(value.strip().strip('"'))
    return found


def _origin_assertion(cookie_header: str, claims: PreviewClaims) -> str | None:
    """The assertion cookie when it is this token's ('' when absent); ``None`` when it is another's."""
    values = _cookie_values(cookie_header, ORIGIN_ASSERTION_COOKIE)
    if not values or not values[-1]:
        return ""
    assertion = values[-1]
    parts = assertion.split(".")
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return None
    if (
        not isinstance(payload, dict)
        or payload.get("jti") != claims.token_id
        or payload.get("sub") != claims.sandbox_id
    ):
        return None
    return assertion


def _forwarded(
    headers: Sequence[tuple[str, str]], claims: PreviewClaims, assertion: str
) -> tuple[tuple[str, str], ...]:
    kept: list[tuple[str, str]] = []
    for name, value in headers:
        lower = name.lower()
        if lower in TRUSTED_HEADERS:
            continue
        if lower == "cookie":
            crumbs = [
                crumb.strip()
                for crumb in value.split(";")
                if crumb.strip() and not crumb.strip().startswith(OUR_COOKIE_PREFIX)
            ]
            if crumbs:
                kept.append((name, "; ".join(crumbs)))
            continue
        kept.append((name, value))
    if assertion:
        kept.append(("X-Preview-Assertion", assertion))
    kept += [
        ("X-Sandbox-Id", claims.sandbox_id),
        ("X-Preview-Scope", claims.scope.value),
        ("X-Preview-Expires", str(claims.expires_at)),
    ]
    return tuple(kept)


def _without_mt(query: str) -> str:
    parts = [part for part in query.split("&") if part and unquote(part.partition("=")[0]) != TOKEN_PARAMETER]
    return "&".join(parts)


@dataclass(frozen=True)
class StreamBehaviours:
    """CloudFront's stream cache behaviours: which paths, the function on them, the stream ingress."""

    edge: StreamEdge
    patterns: tuple[str, ...]
    ingress_port: int

    def matches(self, path: str) -> bool:
        return is_stream_path(path, self.patterns)

    def respond(self, request: HttpRequest) -> HttpResponse | StreamRelay:
        decision = self.edge.decide(
            request.method, request.path, request.query, request.host, request.headers
        )
        if not decision.allowed:
            reason = (decision.reason or DenialReason.INVALID_TOKEN).value
            return HttpResponse(
                decision.status,
                (
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Cache-Control", "no-store"),
                    ("X-Preview-Denial", reason),
                ),
                f"stream refused: {reason}\n".encode(),
            )
        target = request.path + (f"?{decision.forward_query}" if decision.forward_query else "")
        headers = [("Host", f"127.0.0.1:{self.ingress_port}")] + [
            (name, value) for name, value in decision.forward_headers if name.lower() != "host"
        ]
        head = request_head(request.method, target, headers)
        port = self.ingress_port

        def connect() -> socket.socket:
            upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
            upstream.settimeout(None)
            upstream.sendall(head)
            return upstream

        return StreamRelay(connect=connect)
