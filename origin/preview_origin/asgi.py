"""ASGI middleware: refuse every HTTP request and WebSocket without a valid origin assertion.

    from preview_origin import HttpJwks, OriginAssertionVerifier
    from preview_origin.asgi import OriginAssertionMiddleware

    verifier = OriginAssertionVerifier(HttpJwks(JWKS_URL), audience=AUDIENCE)
    app = OriginAssertionMiddleware(app, verifier)

The assertion must name the session the edge verified (``X-Preview-Token-Id``,
:func:`~preview_origin.verifier.names_session`). The sandbox a request is for is its
``X-Sandbox-Id`` header by default (what the fleet routes
on); pass ``sandbox_id_for`` to take it from elsewhere (the host, the path). A refused HTTP
request gets ``403`` with a fixed body; a refused WebSocket is closed before it is accepted
(the server answers the upgrade with 403). An accepted one runs the app with the verified
claims in ``scope["preview_assertion"]`` (an :class:`~preview_origin.OriginAssertion`: use its
``scope`` to drop input from ``read`` viewers). The reason of a refusal is logged, never the
assertion.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from preview_origin.verifier import AssertionRejectedError, OriginAssertionVerifier, names_session

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger("preview_origin")
_REFUSED = b"origin assertion refused\n"
_ASSERTION = b"x-preview-assertion"
_TOKEN_ID = b"x-preview-token-id"


def _header(scope: Scope, name: bytes) -> str | None:
    """The header's value; None when absent or sent more than once (ambiguous)."""
    values = [value for key, value in scope.get("headers", ()) if key.lower() == name]
    return values[0].decode("latin-1") if len(values) == 1 else None


def sandbox_id_header(scope: Scope) -> str | None:
    return _header(scope, b"x-sandbox-id")


class OriginAssertionMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        verifier: OriginAssertionVerifier,
        sandbox_id_for: Callable[[Scope], str | None] = sandbox_id_header,
    ) -> None:
        self._app = app
        self._verifier = verifier
        self._sandbox_id_for = sandbox_id_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self._app(scope, receive, send)
            return
        try:
            claims = self._verifier.verify(_header(scope, _ASSERTION), self._sandbox_id_for(scope) or "")
            token_ids = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == _TOKEN_ID]
            if not names_session(claims, token_ids):
                raise AssertionRejectedError("other_session")
        except AssertionRejectedError as rejected:
            logger.warning("origin assertion refused", extra={"reason": rejected.reason})
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": 403,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", str(len(_REFUSED)).encode()),
                        (b"cache-control", b"no-store"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": _REFUSED})
            return
        await self._app({**scope, "preview_assertion": claims}, receive, send)
