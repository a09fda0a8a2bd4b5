"""The desktop's ``read`` stream: the app drives the RFB client side itself, the viewer only watches.

Behind the fleet ingress a ``read`` viewer's WebSocket frames never reach the app (issue 13: on an
app's WebSocket nothing the viewer sends reaches it). RFB (RFC 6143) needs the client to speak:
its version, its security choice, ``ClientInit``, then ``SetPixelFormat``, ``SetEncodings`` and a
``FramebufferUpdateRequest`` before the server sends a single pixel. So for ``read`` the desktop
app terminates the WebSocket itself and plays the client towards the view-only x11vnc
(``-viewonly``: it drops pointer and key events on the server side, a second lock): it answers
the handshake as noVNC would (security type None, shared), asks for the pixel format noVNC asks
for (32 bpp, depth 24, little-endian, red/green/blue shifts 0/8/16), Raw encoding, and an
incremental update every :data:`UPDATE_SECONDS`. Everything the server sends is passed to the
viewer as binary frames, unchanged, so noVNC's own handshake reads the same bytes and its state
machine follows; whatever the viewer sends (nothing arrives through the ingress) is read and
dropped.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from dataclasses import dataclass

from preview_local.http_messages import HttpRequest
from preview_local.streams import StreamRelay, accept_key

UPDATE_SECONDS = 0.1
_RFB_VERSION = b"RFB 003.008\n"
_SECURITY_NONE = 1
# noVNC's SetPixelFormat (core/rfb.js, RFB.messages.pixelFormat with depth 24, true colour).
_SET_PIXEL_FORMAT = bytes([0, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 0, 8, 16, 0, 0, 0])
_SET_ENCODINGS_RAW = struct.pack(">BxHi", 2, 1, 0)


def _update_request(incremental: bool, width: int, height: int) -> bytes:
    return struct.pack(">BBHHHH", 3, int(incremental), 0, 0, width, height)


def binary_frame(payload: bytes) -> bytes:
    """An unmasked (server-to-client) binary WebSocket frame (RFC 6455 5.2)."""
    size = len(payload)
    if size < 126:
        head = bytes([0x82, size])
    elif size < 1 << 16:
        head = bytes([0x82, 126]) + struct.pack(">H", size)
    else:
        head = bytes([0x82, 127]) + struct.pack(">Q", size)
    return head + payload


def _read_exactly(server: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = server.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the RFB server closed")
        data += chunk
    return data


@dataclass
class ViewOnlyDesktop(StreamRelay):
    """A ``read`` viewer's desktop stream: WebSocket to the viewer, RFB client to x11vnc."""

    request: HttpRequest | None = None
    rfb_port: int = 0

    def run(self, client: socket.socket) -> str:
        try:
            server = socket.create_connection(("127.0.0.1", self.rfb_port), timeout=10)
        except OSError:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return "upstream unreachable"
        request = self.request
        key = (request.header("Sec-WebSocket-Key") if request else None) or ""
        offered = (request.header("Sec-WebSocket-Protocol") if request else None) or ""
        protocol = offered.split(",")[0].strip()
        head = (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_key(key)}\r\n"
            + (f"Sec-WebSocket-Protocol: {protocol}\r\n" if protocol else "")
            + "\r\n"
        )
        stop = threading.Event()
        try:
            client.sendall(head.encode("latin-1"))
            threading.Thread(target=_drain, args=(client, stop), name="rfb-view-drain", daemon=True).start()
            return self._drive(client, server, stop)
        except (OSError, ConnectionError):
            return "closed"
        finally:
            stop.set()
            for side in (server, client):
                with contextlib.suppress(OSError):
                    side.shutdown(socket.SHUT_RDWR)
            server.close()

    def _drive(self, client: socket.socket, server: socket.socket, stop: threading.Event) -> str:
        def relay(data: bytes) -> bytes:
            client.sendall(binary_frame(data))
            return data

        relay(_read_exactly(server, len(_RFB_VERSION)))
        server.sendall(_RFB_VERSION)
        count = relay(_read_exactly(server, 1))[0]
        if count == 0:  # the server refuses: its reason follows; pass it on and stop
            length = struct.unpack(">I", relay(_read_exactly(server, 4)))[0]
            relay(_read_exactly(server, length))
            return "refused by the RFB server"
        types = relay(_read_exactly(server, count))
        if _SECURITY_NONE not in types:
            return "no security type None"
        server.sendall(bytes([_SECURITY_NONE]))
        if struct.unpack(">I", relay(_read_exactly(server, 4)))[0] != 0:
            return "security failed"
        server.sendall(b"\x01")  # ClientInit: shared
        init = _read_exactly(server, 24)
        width, height = struct.unpack(">HH", init[:4])
        name_length = struct.unpack(">I", init[20:24])[0]
        relay(init + _read_exactly(server, name_length))
        server.sendall(_SET_PIXEL_FORMAT + _SET_ENCODINGS_RAW + _update_request(False, width, height))

        def ask_for_updates() -> None:
            with contextlib.suppress(OSError):
                while not stop.wait(UPDATE_SECONDS):
                    server.sendall(_update_request(True, width, height))

        threading.Thread(target=ask_for_updates, name="rfb-view-updates", daemon=True).start()
        server.settimeout(None)
        while not stop.is_set():
            data = server.recv(65536)
            if not data:
                return "closed"
            client.sendall(binary_frame(data))
        return "closed"


def _drain(client: socket.socket, stop: threading.Event) -> None:
    """Read and drop what the viewer sends; its side closing ends the stream."""
    with contextlib.suppress(OSError):
        while client.recv(65536):
            pass
    stop.set()
