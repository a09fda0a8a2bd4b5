"""The edge, as CloudFront applies it in AWS (``PreviewEdgeRouter`` in template.yaml), in Python.

Two steps on every viewer request to a sandbox host, for every method:

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

import dataclasses
import re
from dataclasses import dataclass

from preview_tokens.data_plane.access import FALLBACK_TOKEN_HEADER, TOKEN_PARAMETER
from preview_tokens.data_plane.exchange import EXCHANGE_PATH

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
