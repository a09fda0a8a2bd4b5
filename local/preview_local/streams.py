"""WebSocket upgrades in the demo sandbox app: recognising them, answering them, relaying their bytes.

A handler that takes a request over answers with a :class:`StreamRelay` instead of an
:class:`~preview_local.http_messages.HttpResponse`: the server then hands it the client's socket
and the relay moves bytes both ways until either side closes. Everything a stream must respect
(scope, revocation, ``exp``) is the fleet ingress's job, in front of the app.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import select
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from preview_local.http_messages import HttpRequest

WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_CHUNK = 65536


def is_websocket_upgrade(request: HttpRequest) -> bool:
    upgrade = (request.header("Upgrade") or "").lower()
    connection = (request.header("Connection") or "").lower()
    return upgrade == "websocket" and "upgrade" in connection


def accept_key(client_key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key`` (RFC 6455, 4.2.2)."""
    return base64.b64encode(hashlib.sha1((client_key + WEBSOCKET_GUID).encode()).digest()).decode()  # noqa: S324


def text_frame(text: str) -> bytes:
    """An unmasked (server-to-client) text frame, payload under 126 bytes."""
    payload = text.encode("utf-8")[:125]
    return bytes([0x81, len(payload)]) + payload


def request_head(method: str, target: str, headers: Sequence[tuple[str, str]]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", *(f"{name}: {value}" for name, value in headers), "", ""]
    return "\r\n".join(lines).encode("latin-1")


@dataclass
class StreamRelay:
    """Takes over a client connection: ``connect`` opens the upstream side, then bytes flow."""

    connect: Callable[[], socket.socket]
    """Opens the upstream socket, already past the handshake request (its answer flows back)."""
    greeting: bytes = b""
    """Bytes sent to the client before relaying (a handshake answered locally)."""

    def run(self, client: socket.socket) -> str:
        """Relay until one side closes; returns why it ended.

        Nothing the client sent after its request head is expected before the upgrade's answer
        (RFC 6455 4.1: no frame before the 101), so the relay reads the socket itself.
        """
        try:
            upstream = self.connect()
        except OSError:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return "upstream unreachable"
        ended = "closed"
        try:
            if self.greeting:
                client.sendall(self.greeting)
            ended = self._pump(client, upstream)
        except OSError:
            ended = "connection error"
        finally:
            for side in (upstream, client):
                with contextlib.suppress(OSError):
                    side.shutdown(socket.SHUT_RDWR)
            upstream.close()
        return ended

    def _pump(self, client: socket.socket, upstream: socket.socket) -> str:
        sides = {client: upstream, upstream: client}
        while True:
            readable, _, _ = select.select(list(sides), [], [], 1.0)
            for source in readable:
                data = source.recv(_CHUNK)
                if not data:
                    return "closed"
                sides[source].sendall(data)
