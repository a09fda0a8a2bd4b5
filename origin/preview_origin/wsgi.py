"""WSGI middleware: refuse every request without a valid origin assertion.

    from preview_origin import HttpJwks, OriginAssertionVerifier
    from preview_origin.wsgi import OriginAssertionWSGIMiddleware

    verifier = OriginAssertionVerifier(HttpJwks(JWKS_URL), audience=AUDIENCE)
    application = OriginAssertionWSGIMiddleware(application, verifier)

The assertion must name the session the edge verified (``X-Preview-Token-Id``,
:func:`~preview_origin.verifier.names_session`). The sandbox is ``X-Sandbox-Id`` by
default (``sandbox_id_for`` changes it). A refused request
gets ``403`` with a fixed body; an accepted one runs the app with the verified claims in
``environ["preview.assertion"]``. The reason of a refusal is logged, never the assertion.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from preview_origin.verifier import AssertionRejectedError, OriginAssertionVerifier, names_session

ENVIRON_KEY = "preview.assertion"
logger = logging.getLogger("preview_origin")
_REFUSED = b"origin assertion refused\n"


class StartResponse(Protocol):
    def __call__(self, status: str, headers: list[tuple[str, str]], /) -> Any: ...


WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def sandbox_id_header(environ: Mapping[str, Any]) -> str | None:
    value = environ.get("HTTP_X_SANDBOX_ID")
    return value if isinstance(value, str) else None


class OriginAssertionWSGIMiddleware:
    def __init__(
        self,
        app: WSGIApp,
        verifier: OriginAssertionVerifier,
        sandbox_id_for: Callable[[Mapping[str, Any]], str | None] = sandbox_id_header,
    ) -> None:
        self._app = app
        self._verifier = verifier
        self._sandbox_id_for = sandbox_id_for

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        assertion = environ.get("HTTP_X_PREVIEW_ASSERTION")
        try:
            claims = self._verifier.verify(
                assertion if isinstance(assertion, str) else None, self._sandbox_id_for(environ) or ""
            )
            token_id = environ.get("HTTP_X_PREVIEW_TOKEN_ID")  # a server joins repeats with ","
            if not names_session(claims, [token_id] if isinstance(token_id, str) else []):
                raise AssertionRejectedError("other_session")
        except AssertionRejectedError as rejected:
            logger.warning("origin assertion refused", extra={"reason": rejected.reason})
            start_response(
                "403 Forbidden",
                [
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Length", str(len(_REFUSED))),
                    ("Cache-Control", "no-store"),
                ],
            )
            return [_REFUSED]
        environ[ENVIRON_KEY] = claims
        return self._app(environ, start_response)
