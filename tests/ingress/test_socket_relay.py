"""Which connections the socket relay may take: plain TCP only, never TLS.

The relay moves bytes as they are on the socket. On a TLS connection those are records, so a body
relayed from an ``https`` app would reach the viewer encrypted; :func:`plain_socket` must refuse
such a transport on both event loops the ingress runs on (uvloop in the CLI, asyncio elsewhere).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
import uvloop
from preview_ingress.socket_relay import plain_socket

from tests.support.certificates import self_signed_certificate

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "uvloop": uvloop.new_event_loop,
    "asyncio": asyncio.new_event_loop,
}


async def _connected(
    server_context: ssl.SSLContext | None, client_context: ssl.SSLContext | None
) -> tuple[bool, bool]:
    """Whether ``plain_socket`` gives a socket for the client's and the server's transport."""
    loop = asyncio.get_running_loop()
    accepted: asyncio.Future[asyncio.BaseTransport] = loop.create_future()

    class Accepting(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted.set_result(transport)

    server = await loop.create_server(Accepting, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    client, _ = await loop.create_connection(
        asyncio.Protocol,
        "127.0.0.1",
        port,
        ssl=client_context,
        server_hostname="localhost" if client_context else None,
    )
    try:
        server_side = await asyncio.wait_for(accepted, 10)
        return plain_socket(client) is not None, plain_socket(server_side) is not None
    finally:
        client.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("loop", LOOPS)
def test_a_tls_connection_is_never_relayed_on_either_side(tmp_path: Path, loop: str) -> None:
    cert, key = self_signed_certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))

    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        assert runner.run(_connected(server_context, client_context)) == (False, False)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_plain_tcp_connection_may_be_relayed_on_both_sides(loop: str) -> None:
    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        assert runner.run(_connected(None, None)) == (True, True)
