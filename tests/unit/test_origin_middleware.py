"""The fleet-side middleware examples: no valid assertion for the addressed sandbox, no app."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any
from wsgiref.util import setup_testing_defaults

from preview_origin import OriginAssertion, OriginAssertionVerifier, StaticJwks
from preview_origin.asgi import OriginAssertionMiddleware
from preview_origin.wsgi import ENVIRON_KEY, OriginAssertionWSGIMiddleware
from preview_tokens.data_plane.origin_assertion import (
    PublishedOriginKey,
    origin_jwks,
    public_key_of,
    sign_origin_assertion,
)
from preview_tokens.keys.tokens import PreviewClaims, Scope

NOW = 1_800_000_000
AUDIENCE = "https://ingress.example.com"
SEED = bytes(range(32))


def assertion_for(sandbox_id: str) -> str:
    claims = PreviewClaims(
        sandbox_id, "acme", f"{sandbox_id}.p.example.com", Scope.READ, NOW, NOW + 60, "t-1"
    )
    return sign_origin_assertion(claims, AUDIENCE, "oa1", SEED)


VERIFIER = OriginAssertionVerifier(
    StaticJwks(origin_jwks([PublishedOriginKey("oa1", public_key_of(SEED))])), AUDIENCE, clock=lambda: NOW
)


# ------------------------------------------------------------------------------ ASGI
class AsgiApp:
    def __init__(self) -> None:
        self.seen: list[OriginAssertion] = []

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        self.seen.append(scope["preview_assertion"])
        if scope["type"] == "websocket":
            await send({"type": "websocket.accept"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"sandbox"})


def run_asgi(kind: str, headers: dict[str, str]) -> tuple[AsgiApp, list[MutableMapping[str, Any]]]:
    app = AsgiApp()
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": kind,
        "path": "/",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    asyncio.run(OriginAssertionMiddleware(app, VERIFIER)(scope, receive, send))
    return app, sent


def test_asgi_passes_a_request_with_a_valid_assertion_for_its_sandbox() -> None:
    app, sent = run_asgi(
        "http",
        {"X-Sandbox-Id": "sbx-a", "X-Preview-Assertion": assertion_for("sbx-a"), "X-Preview-Token-Id": "t-1"},
    )

    assert sent[0]["status"] == 200
    assert app.seen[0].sandbox_id == "sbx-a"
    assert app.seen[0].scope == "read"


def test_asgi_refuses_a_forged_sandbox_header_or_another_sandboxs_assertion() -> None:
    for headers in (
        {"X-Sandbox-Id": "sbx-b"},
        {"X-Sandbox-Id": "sbx-b", "X-Preview-Assertion": assertion_for("sbx-a")},
    ):
        app, sent = run_asgi("http", headers)

        assert sent[0]["status"] == 403
        assert sent[1]["body"] == b"origin assertion refused\n"
        assert app.seen == []


def test_asgi_closes_a_websocket_without_a_valid_assertion_before_accepting_it() -> None:
    app, sent = run_asgi(
        "websocket", {"X-Sandbox-Id": "sbx-b", "X-Preview-Assertion": assertion_for("sbx-a")}
    )

    assert sent == [{"type": "websocket.close", "code": 1008}]
    assert app.seen == []
    _, accepted = run_asgi(
        "websocket",
        {"X-Sandbox-Id": "sbx-a", "X-Preview-Assertion": assertion_for("sbx-a"), "X-Preview-Token-Id": "t-1"},
    )
    assert accepted == [{"type": "websocket.accept"}]


def test_asgi_refuses_the_assertion_of_another_session_than_the_edge_verified() -> None:
    for token_id in (None, "t-2", ""):
        headers = {"X-Sandbox-Id": "sbx-a", "X-Preview-Assertion": assertion_for("sbx-a")}
        if token_id is not None:
            headers["X-Preview-Token-Id"] = token_id
        for kind in ("http", "websocket"):
            app, sent = run_asgi(kind, headers)

            if kind == "websocket":
                assert sent == [{"type": "websocket.close", "code": 1008}]
            else:
                assert sent[0]["status"] == 403
            assert app.seen == []


# ------------------------------------------------------------------------------ WSGI
def run_wsgi(environ_headers: dict[str, str]) -> tuple[str, bytes, dict[str, Any]]:
    environ: dict[str, Any] = dict(environ_headers)
    setup_testing_defaults(environ)
    statuses: list[str] = []

    def app(env: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"sandbox {env[ENVIRON_KEY].sandbox_id}".encode()]

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        statuses.append(status)

    body = b"".join(OriginAssertionWSGIMiddleware(app, VERIFIER)(environ, start_response))
    return statuses[0], body, environ


def test_wsgi_passes_a_request_with_a_valid_assertion_for_its_sandbox() -> None:
    status, body, environ = run_wsgi(
        {
            "HTTP_X_SANDBOX_ID": "sbx-a",
            "HTTP_X_PREVIEW_ASSERTION": assertion_for("sbx-a"),
            "HTTP_X_PREVIEW_TOKEN_ID": "t-1",
        }
    )

    assert status == "200 OK"
    assert body == b"sandbox sbx-a"
    assert environ[ENVIRON_KEY].token_id == "t-1"


def test_wsgi_refuses_a_forged_sandbox_header_or_another_sandboxs_assertion() -> None:
    for headers in (
        {"HTTP_X_SANDBOX_ID": "sbx-b"},
        {"HTTP_X_SANDBOX_ID": "sbx-b", "HTTP_X_PREVIEW_ASSERTION": assertion_for("sbx-a")},
    ):
        status, body, environ = run_wsgi(headers)

        assert status == "403 Forbidden"
        assert body == b"origin assertion refused\n"
        assert ENVIRON_KEY not in environ


def test_wsgi_refuses_the_assertion_of_another_session_than_the_edge_verified() -> None:
    for token_id in (None, "t-2", "t-1,t-1"):
        headers = {"HTTP_X_SANDBOX_ID": "sbx-a", "HTTP_X_PREVIEW_ASSERTION": assertion_for("sbx-a")}
        if token_id is not None:
            headers["HTTP_X_PREVIEW_TOKEN_ID"] = token_id

        status, _, environ = run_wsgi(headers)

        assert status == "403 Forbidden"
        assert ENVIRON_KEY not in environ
