"""The edge's routing rule, as CloudFront applies it in AWS (``PreviewEdgeRouter`` in template.yaml).

A request whose query string has ``mt`` is a preview link being opened: it goes to the exchange,
at the same path under :data:`~preview_tokens.exchange.EXCHANGE_PATH`, with its query string
unchanged. Requests already under ``/__preview/`` are never rewritten a second time. The local
stack routes with :func:`edge_route`; a test runs both against the same cases.
"""

from __future__ import annotations

from collections.abc import Iterable

from preview_tokens.exchange import EXCHANGE_PATH, TOKEN_PARAMETER

RESERVED_PREFIX = "/__preview/"


def edge_route(path: str, query_names: Iterable[str], method: str = "GET") -> str:
    """The path the request continues with; ``query_names`` are the query's parameter names.

    Only document loads (GET) are exchanged; any other method keeps its path and meets
    the authorizer, which reads ``?mt=`` as its fallback.
    """
    if method != "GET" or TOKEN_PARAMETER not in query_names or path.startswith(RESERVED_PREFIX):
        return path
    return EXCHANGE_PATH if path == "/" else EXCHANGE_PATH + path
