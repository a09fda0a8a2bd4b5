"""The local CloudFront in front of the fleet ingress, as CloudFront behaves (each behaviour sourced in
``local/preview_local/front_door.py``): the request target reaches the app byte for byte as the
viewer sent it (no decoding, no re-encoding: ``@`` paths of Vite, ``%2F`` kept), the exchange's
redirect keeps such a path, and the answer streams back as the app sends it.
"""

from __future__ import annotations

import secrets
import socket
from typing import Any

import pytest

from tests.e2e.local_stack import LocalStack, fetch

pytestmark = pytest.mark.e2e


def session(stack: LocalStack, sandbox_id: str) -> str:
    return stack.preview_session(sandbox_id, "interact")


@pytest.mark.parametrize(
    "path",
    [
        "/api/request/@vite/client",
        "/api/request/@fs/home/dev/app/src/main.tsx",
        "/api/request/node_modules/.vite/deps/@scope_pkg.js",
        "/api/request/%40react-refresh",
        "/api/request/a%2Fb/c%20d",
        "/api/request/%E2%9C%93",
    ],
)
def test_the_path_reaches_the_app_exactly_as_the_viewer_sent_it(stack: LocalStack, path: str) -> None:
    sandbox_id = stack.demo["sandbox_id"]

    reply = fetch(
        f"{stack.preview_origin(sandbox_id)}{path}?v=1", headers={"Cookie": session(stack, sandbox_id)}
    )

    assert reply.status == 200, reply.text
    arrived: dict[str, Any] = reply.json()
    assert arrived["path"] == path
    assert arrived["query_names"] == ["v"]


def test_opening_a_link_to_an_at_path_lands_on_that_path(stack: LocalStack) -> None:
    sandbox_id = stack.demo["sandbox_id"]
    origin = stack.preview_origin(sandbox_id)
    token = stack.mint(stack.demo["api_key"], sandbox_id, {"scope": "read"}).json()["token"]

    exchanged = fetch(f"{origin}/@vite/client?mt={token}")
    cookies = "; ".join(value.split(";", 1)[0] for value in exchanged.headers.get_all("Set-Cookie", []))
    checked = fetch(f"{origin}{exchanged.headers['Location']}", headers={"Cookie": cookies})

    assert exchanged.status == 302
    assert exchanged.headers["Location"] == "/__preview/cookie-check/@vite/client"
    assert checked.status == 302
    assert checked.headers["Location"] == "/@vite/client"


def test_a_response_streams_back_as_the_app_sends_it(stack: LocalStack) -> None:
    """The app's /api/slow sends ``first``, then ``second`` only once released by another request:
    ``first`` arrives while the app still holds ``second`` (server-sent events, long downloads)."""
    sandbox_id = stack.demo["sandbox_id"]
    cookie = session(stack, sandbox_id)
    host = f"{sandbox_id}.{stack.demo['preview_domain']}:{stack.port}"
    stream_id = secrets.token_hex(4)
    head = f"GET /api/slow?id={stream_id} HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n\r\n"

    with socket.create_connection(("127.0.0.1", stack.port), timeout=20) as connection:
        connection.sendall(head.encode())
        received = read_until(connection, b"first", b"")
        assert b"second" not in received
        released = fetch(
            f"{stack.preview_origin(sandbox_id)}/api/slow/release?id={stream_id}", headers={"Cookie": cookie}
        )
        received = read_until(connection, b"second", received)

    assert released.status == 200
    assert received.startswith(b"HTTP/1.1 200 ")


def read_until(connection: socket.socket, wanted: bytes, received: bytes) -> bytes:
    while wanted not in received:
        chunk = connection.recv(65536)
        assert chunk, received
        received += chunk
    return received
