"""The edge, as CloudFront applies it in AWS (``PreviewEdge`` in template.yaml), in Python.

:class:`PreviewEdge` is the mirror of the viewer-request CloudFront Function (source
``edge/preview_edge.js``; the shared vectors ``tests/vectors/edge_access.json`` hold both): every
request, any path, HTTP and WebSocket, gets ONE route:

* ``exchange``: the query carries ``mt`` (steps 1 and 2 below), or the path is under
  ``/__preview/``: on to the REST PreviewApi (the exchange, the cookie check, the denial page).
* ``denied``: no, invalid, expired or wrong-sandbox session, ``read`` on input, or a session
  without its ``__Host-mp_origin`` assertion: rewritten to
  ``/__preview/denied`` on the REST API, query dropped, the reason in ``x-preview-denial`` (the
  method stays: a CloudFront Function cannot change it).
* ``ingress``: allowed: to the ``fleet-ingress`` origin with every ``__Host-mp_*`` cookie removed,
  the origin assertion in ``x-preview-assertion`` and the session's token id (``jti``) in
  ``x-preview-token-id``; path, query and other headers as sent. The edge does not read the
  assertion: the ingress verifies it and that it names this token id (an assertion of another
  token is refused there).

Headers only the edge may set (:data:`EDGE_HEADERS`) are removed from every viewer request first.

The ``mt`` steps, kept from the former ``PreviewEdgeRouter``, on every viewer request:

1. :func:`take_preview_token` - the token never reaches the origin, by construction: every query
   parameter whose name API Gateway would decode to ``mt`` is removed from the query, and its
   value travels on in the ``X-Preview-Token`` header. The client's own ``X-Preview-Token`` is
   always dropped. API Gateway decodes a query as ``application/x-www-form-urlencoded``: ``+``
   is a space and ``%XX`` a byte, once (so ``m%74``, ``%6D%74`` and ``%6d%74`` are ``mt``, while
   ``m%2574``, ``MT`` and ``mt+`` are other names). Exactly one non-empty ``mt`` of visible
   ASCII is passed on as it is; several ``mt`` values, or one with other bytes, become
   :data:`UNUSABLE_TOKEN`, which never verifies (``invalid_token``): no guessing which one counts.
   An empty ``mt`` is removed and passes no header.
2. :func:`edge_route` - a GET that carried ``mt`` is a preview link being opened: it goes to the
   exchange, at the same path under :data:`~preview_tokens.data_plane.exchange.EXCHANGE_PATH`. Requests
   already under ``/__preview/`` are never rewritten a second time.

The local stack applies :func:`viewer_request` (both steps); :func:`strip_preview_token` is step
1 alone, for any other edge path that forwards viewer requests (streams). A test runs the
CloudFront Function under node against these functions on the same cases.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from preview_tokens.data_plane.access import (
    FALLBACK_TOKEN_HEADER,
    METHOD_OVERRIDE_HEADERS,
    ORIGIN_ASSERTION_COOKIE,
    PREVIEW_COOKIE_PREFIX,
    SESSION_COOKIE,
    SESSION_ENDS_COOKIE,
    TOKEN_PARAMETER,
    DenialReason,
    input_path_segments,
    normalize_host,
    read_scope_allows,
)
from preview_tokens.data_plane.exchange import EXCHANGE_PATH
from preview_tokens.keys.tokens import (
    ExpiredTokenError,
    InvalidTokenError,
    PreviewClaims,
    Scope,
    verify_preview_token,
)

from preview_local.http_messages import HttpRequest

RESERVED_PREFIX = "/__preview/"
UNUSABLE_TOKEN = "invalid"
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_PASSABLE_TOKEN = re.compile(r"[\x21-\x2b\x2d-\x7e]+")  # visible ASCII but ',': one header value


def form_decode(component: str) -> str:
    """A query component decoded as API Gateway decodes it: ``+`` is a space, ``%XX`` one byte.

    Bytes stay bytes (each one character of the same code), so a name equals ``mt`` only if its
    bytes are exactly ``m`` ``t``; a malformed escape is kept as it is.
    """
    return _ESCAPE.sub(lambda escape: chr(int(escape.group(1), 16)), component.replace("+", " "))


@dataclass(frozen=True)
class TakenToken:
    """A query with the preview token taken off, and what the edge passes on instead."""

    query: str
    """The raw query without any ``mt`` parameter; the other parameters exactly as sent."""
    carried: bool
    """The query had at least one ``mt`` parameter (empty or not)."""
    header_value: str | None
    """The ``X-Preview-Token`` to send on; ``None``: no such header."""


def take_preview_token(raw_query: str) -> TakenToken:
    kept: list[str] = []
    values: list[str] = []
    for piece in raw_query.split("&") if raw_query else []:
        name, equals, value = piece.partition("=")
        if form_decode(name) == TOKEN_PARAMETER:
            values.append(form_decode(value) if equals else "")
        else:
            kept.append(piece)
    if not values:
        return TakenToken(raw_query, False, None)
    header_value: str | None = None
    if len(values) == 1 and _PASSABLE_TOKEN.fullmatch(values[0]):
        header_value = values[0]
    elif len(values) > 1 or values[0]:
        header_value = UNUSABLE_TOKEN
    return TakenToken("&".join(kept), True, header_value)


def edge_route(path: str, carried_token: bool, method: str = "GET") -> str:
    """The path the request continues with: a GET that carried ``mt`` goes to the exchange."""
    if method != "GET" or not carried_token or path.startswith(RESERVED_PREFIX):
        return path
    return EXCHANGE_PATH if path == "/" else EXCHANGE_PATH + path


def strip_preview_token(request: HttpRequest) -> tuple[HttpRequest, TakenToken]:
    """Step 1: ``mt`` off the query, its value in ``X-Preview-Token``, the client's own dropped."""
    taken = take_preview_token(request.query)
    headers = tuple(
        (name, value) for name, value in request.headers if name.lower() != FALLBACK_TOKEN_HEADER.lower()
    )
    if taken.header_value is not None:
        headers += ((FALLBACK_TOKEN_HEADER.lower(), taken.header_value),)
    return dataclasses.replace(request, query=taken.query, headers=headers), taken


def viewer_request(request: HttpRequest) -> HttpRequest:
    """Both steps, as ``PreviewEdgeRouter`` changes a viewer request before API Gateway."""
    stripped, taken = strip_preview_token(request)
    return dataclasses.replace(stripped, path=edge_route(stripped.path, taken.carried, stripped.method))


# ------------------------------------------------------------------------------ PreviewEdge

Route = Literal["exchange", "denied", "ingress"]
EdgeKeySource = Callable[[str], str | None]
"""Reads the edge KeyValueStore: ``key.<kid>`` -> the HS256 key (base64url), ``None`` when absent.

(The function reads ``hs.<header segment>`` first, the same key under the exact header mint
writes, only to skip decoding the header: the decision is the same, so the mirror reads the kid.)"""
DENIED_PATH = "/__preview/denied"
DENIAL_HEADER = "x-preview-denial"
DENIAL_SANDBOX_HEADER = "x-preview-denial-sandbox"
ASSERTION_HEADER = "x-preview-assertion"
TOKEN_ID_HEADER = "x-preview-token-id"
INGRESS_ORIGIN_ID = "fleet-ingress"
EDGE_HEADERS = (
    "x-preview-token",
    ASSERTION_HEADER,
    DENIAL_HEADER,
    DENIAL_SANDBOX_HEADER,
    "x-preview-ingress-secret",
    "x-sandbox-id",
    "x-preview-scope",
    "x-preview-expires",
    TOKEN_ID_HEADER,
)


@dataclass(frozen=True)
class EdgeDecision:
    route: Route
    request: HttpRequest
    """The request as the function forwards it (to the REST API, or to the ingress)."""
    reason: str | None = None
    """The denial reason (``denied`` only): one the denial page knows."""
    claims: PreviewClaims | None = None
    """The verified session's claims, when a token verified (also on some denials)."""


class EdgeKeys(Mapping[str, bytes]):
    """The KeyValueStore seen as the ``kid -> key`` mapping the token codec verifies with."""

    def __init__(self, read: EdgeKeySource) -> None:
        self._read = read

    def __getitem__(self, kid: str) -> bytes:
        value = self._read(f"key.{kid}")
        if value is None:
            raise KeyError(kid)
        try:
            return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            raise KeyError(kid) from None

    def __contains__(self, kid: object) -> bool:
        if not isinstance(kid, str):
            return False
        try:
            self[kid]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _cookie(cookie_header: str, name: str) -> str:
    """The last value of cookie ``name`` (as CloudFront's ``multiValue``), quotes and spaces trimmed."""
    found = ""
    for crumb in cookie_header.split(";"):
        key, _, value = crumb.strip().partition("=")
        if key.strip() == name:
            found = value
    return found.strip().strip('"')


def _without_our_cookies(cookie_header: str) -> str:
    prefix = PREVIEW_COOKIE_PREFIX.lower()
    crumbs = [crumb.strip() for crumb in cookie_header.split(";") if crumb.strip()]
    return "; ".join(crumb for crumb in crumbs if not crumb.lower().startswith(prefix))


class PreviewEdge:
    """``PreviewEdge`` (edge/preview_edge.js) in Python: the local CloudFront's brain."""

    def __init__(
        self, edge_key_source: EdgeKeySource, input_path_prefix: str, clock: Callable[[], float] = time.time
    ) -> None:
        self._keys = EdgeKeys(edge_key_source)
        self._input_prefix = input_path_segments(input_path_prefix)
        self._clock = clock

    def decide(self, request: HttpRequest) -> EdgeDecision:
        headers = tuple((n, v) for n, v in request.headers if n.lower() not in EDGE_HEADERS)
        request = dataclasses.replace(request, headers=headers)
        stripped, taken = strip_preview_token(request)
        if taken.carried or request.path.startswith(RESERVED_PREFIX):
            path = edge_route(stripped.path, taken.carried, stripped.method)
            return EdgeDecision("exchange", dataclasses.replace(stripped, path=path))
        reason, claims, assertion = self._verdict(request)
        if reason is not None:
            denial: tuple[tuple[str, str], ...] = ((DENIAL_HEADER, reason.value),)
            if claims is not None:
                denial += ((DENIAL_SANDBOX_HEADER, claims.sandbox_id),)
            denied = dataclasses.replace(request, path=DENIED_PATH, query="", headers=headers + denial)
            return EdgeDecision("denied", denied, reason.value, claims)
        forwarded: list[tuple[str, str]] = []
        for name, value in headers:
            if name.lower() == "cookie":
                value = _without_our_cookies(value)
                if not value:
                    continue
            forwarded.append((name, value))
        assert claims is not None  # allowed: a session verified
        forwarded.append((ASSERTION_HEADER, assertion))
        forwarded.append((TOKEN_ID_HEADER, claims.token_id))
        return EdgeDecision("ingress", dataclasses.replace(request, headers=tuple(forwarded)), None, claims)

    def _verdict(self, request: HttpRequest) -> tuple[DenialReason | None, PreviewClaims | None, str]:
        cookie_header = "; ".join(v for n, v in request.headers if n.lower() == "cookie")
        now = int(self._clock())
        token = _cookie(cookie_header, SESSION_COOKIE)
        if not token:
            ends = _cookie(cookie_header, SESSION_ENDS_COOKIE)
            ended = re.fullmatch(r"[0-9]{1,15}", ends) is not None and int(ends) <= now
            return (DenialReason.EXPIRED if ended else DenialReason.NO_TOKEN), None, ""
        try:
            claims = verify_preview_token(token, self._keys, now)
        except ExpiredTokenError as expired:
            return DenialReason.EXPIRED, expired.claims, ""
        except InvalidTokenError:
            return DenialReason.INVALID_TOKEN, None, ""
        if claims.host != normalize_host(request.header("host") or ""):
            return DenialReason.WRONG_SANDBOX, claims, ""
        overrides = [v for n, v in request.headers if n.lower() in METHOD_OVERRIDE_HEADERS]
        if claims.scope is Scope.READ and not read_scope_allows(
            request.method, request.path, overrides, self._input_prefix
        ):
            return DenialReason.READ_ONLY, claims, ""
        assertion = _cookie(cookie_header, ORIGIN_ASSERTION_COOKIE)
        if not assertion:
            return DenialReason.INVALID_TOKEN, None, ""
        return None, claims, assertion
