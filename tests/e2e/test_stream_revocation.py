"""Revocation reaches open streams, over real sockets through the local CloudFront and the fleet ingress.

An interact stream (the sandbox's input stream) is opened with the cookies a browser holds
after the exchange; its token is then revoked in one of five ways, each on a tenant of its own
(operator CLI) so the demo tenant other tests use is untouched. The fleet ingress polls the
revocation feed itself: the open socket is closed by the server within 5 s, a new upgrade with
the same cookies is refused, and another sandbox's open stream stays open.
"""

from __future__ import annotations

import base64
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from tests.e2e.local_stack import LocalStack
from tests.e2e.test_operator_cli import operator
from tests.e2e.test_revocation import WAYS, Tenant, new_tenant
from tests.e2e.test_streams import INPUT_STREAM, exchanged, mint, upgrade, wait_for_log_line

pytestmark = pytest.mark.e2e

REVOCATION_DEADLINE_SECONDS = 5.0


def revoke_the_key_with_its_tokens(stack: LocalStack, tenant: Tenant, token: str) -> None:
    operator(stack, "api-key", "revoke", "--tenant", tenant.tenant_id, tenant.key_id, "--with-tokens")


STREAM_WAYS: dict[str, Callable[[LocalStack, Tenant, str], None]] = {
    **WAYS,
    "api-key-revoked-with-tokens": revoke_the_key_with_its_tokens,
}


@contextmanager
def open_stream(stack: LocalStack, sandbox_id: str, cookie: str) -> Iterator[socket.socket]:
    """An upgraded input stream over a real socket, past its 101 and the origin's greeting."""
    key = base64.b64encode(os.urandom(16)).decode()
    head = (
        f"GET {INPUT_STREAM} HTTP/1.1\r\n"
        f"Host: {sandbox_id}.{stack.demo['preview_domain']}:{stack.port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Origin: {stack.api_url}\r\nCookie: {cookie}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as client:
        client.sendall(head.encode())
        received = b""
        while b"input stream of" not in received:
            chunk = client.recv(4096)
            assert chunk, f"the stream was not opened: {received[:200]!r}"
            received += chunk
        assert received.startswith(b"HTTP/1.1 101 "), received[:200]
        yield client


def closed_by_the_server_within(client: socket.socket, seconds: float) -> bool:
    """Read until EOF; False if the server kept the socket open for ``seconds`` without a byte."""
    client.settimeout(seconds)
    try:
        while client.recv(4096):
            pass
    except TimeoutError:
        return False
    return True


@pytest.mark.parametrize("way", list(STREAM_WAYS))
def test_revoking_a_token_closes_its_open_stream_within_5_s(stack: LocalStack, way: str) -> None:
    # Given an open interact stream of a tenant's sandbox, and an open stream of another sandbox
    tenant = new_tenant(stack)
    minted = stack.mint(tenant.api_key, tenant.sandbox_id, {"scope": "interact"})
    assert minted.status == 200, minted.text
    token = minted.json()["token"]
    cookies = exchanged(stack, tenant.sandbox_id, token)
    other_sandbox = stack.demo["sandbox_id"]
    other_cookies = exchanged(stack, other_sandbox, mint(stack, other_sandbox, "interact"))

    with (
        open_stream(stack, tenant.sandbox_id, cookies) as stream,
        open_stream(stack, other_sandbox, other_cookies) as other,
    ):
        # When the token is revoked
        STREAM_WAYS[way](stack, tenant, token)

        # Then the server closes the open stream within 5 s
        assert closed_by_the_server_within(stream, REVOCATION_DEADLINE_SECONDS), (
            f"the stream was still open {REVOCATION_DEADLINE_SECONDS} s after the revocation ({way})"
        )
        wait_for_log_line(stack, '"closed":"revoked"')  # the ingress's line for the stream

        # And another sandbox's stream stays open (it is checked at least as often: ~1 s)
        assert not closed_by_the_server_within(other, 2.5), "another sandbox's stream was closed"

    # And a new upgrade with the same cookies is refused
    again = upgrade(stack, tenant.sandbox_id, INPUT_STREAM, cookies)
    assert again.status in (401, 403), again.head
