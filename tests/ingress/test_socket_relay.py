"""The socket relay: which connections it may take (plain TCP only, never TLS), and that it shares
the event loop when neither end makes it wait.

The relay moves bytes as they are on the socket. On a TLS connection those are records, so a body
relayed from an ``https`` app would reach the viewer encrypted; :func:`plain_socket` must refuse
such a transport on both event loops the ingress runs on (uvloop in the CLI, asyncio elsewhere).
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvloop
from preview_ingress.socket_relay import YIELD_EVERY_BYTES, SocketRelay, plain_socket

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


# ---- turns of the loop ---------------------------------------------------------------------------
#
# The socket relay shares the event loop when neither end makes it wait.
#
# Over a network the viewer's socket fills and the relay waits on the loop often. When both ends keep
# up with it (loopback, a fast app and a fast reader) it would otherwise move a whole body in one go:
# other viewers' requests on the same ingress would wait for it, and a stream's end at ``exp`` or on
# a revocation (a cancellation, which lands only where the relay awaits) would wait too. Here both
# ends never block: the app's side is ``/dev/zero`` and the viewer's ``/dev/null``.

BODY = 64 * YIELD_EVERY_BYTES


class _Fd:
    """A file descriptor where the relay expects a socket (it only asks for ``fileno()``)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def fileno(self) -> int:
        return self._fd


@pytest.fixture
def relay() -> Iterator[SocketRelay]:
    zero, null = os.open("/dev/zero", os.O_RDONLY), os.open("/dev/null", os.O_WRONLY)
    made = SocketRelay(_Fd(zero), _Fd(null))  # type: ignore[arg-type]  # duplicates both
    os.close(zero)
    os.close(null)
    yield made
    made.close()


class _Moved:
    """What the relay reports as moved (its ``moved`` callback)."""

    def __init__(self) -> None:
        self.bytes = 0

    def __call__(self, n: int) -> None:
        self.bytes += n


def test_other_work_runs_while_a_body_is_relayed_without_waits(relay: SocketRelay) -> None:
    async def go() -> tuple[int, int]:
        moved = _Moved()
        relaying = asyncio.create_task(relay.move(BODY, moved))
        await asyncio.sleep(0)  # the relay starts
        seen_meanwhile = moved.bytes  # another request's turn: the body is not over
        await relaying
        return seen_meanwhile, moved.bytes

    seen_meanwhile, moved = asyncio.run(go())

    assert 0 < seen_meanwhile < BODY
    assert moved == BODY


def test_a_relay_without_waits_ends_when_its_stream_is_ended(relay: SocketRelay) -> None:
    async def go() -> tuple[bool, int]:
        moved = _Moved()
        relaying = asyncio.create_task(relay.move(BODY, moved))
        await asyncio.sleep(0)
        relaying.cancel()  # what the stream registry does at exp or on a revocation
        try:
            await relaying
        except asyncio.CancelledError:
            return True, moved.bytes
        return False, moved.bytes

    cancelled, moved = asyncio.run(go())

    assert cancelled
    assert moved < BODY
