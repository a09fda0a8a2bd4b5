"""The relay of a large response body: the app's socket -> one reused buffer -> the viewer's socket.

Relayed through the transports, each chunk of a download became a new ``bytes`` object read by the
app's transport, queued and written by the viewer's: the ingress cost about as much CPU per MB as
the client and the app together (``make bench``). Here the rest of a ``Content-Length`` body is
read straight off the app's socket into one buffer (:data:`BUFFER_BYTES`, allocated once per body)
and written from it to the viewer's socket, in a loop that waits on the event loop only when
neither side can move: two system calls per buffer and no Python object per chunk.

It replaced a ``splice(2)`` relay (app socket -> pipe -> viewer socket, no copy through the
process), which spent less of the ingress's own CPU per MB but made the other two ends pay more:
spliced pages stay the app's until the viewer has read them, so the app writes into fresh memory
and the viewer reads memory long out of cache. Measured head to head on the same machine
(``make bench``, ingress/README.md): the copy moved a download faster, with the CPUs shared and with
the ingress on a CPU of its own.

Only plain TCP both ways (TLS bytes must be decrypted and encrypted by the transports). The caller
hands over both sockets with nothing buffered: the app's transport paused (its event loop stops
reading the fd, so no byte of the body reaches Python meanwhile) and the viewer's write buffer empty
(nothing of ours is written meanwhile: one request is answered at a time), so no byte is reordered.
The viewer's transport keeps reading: a pipelined request is parsed and waits, as during any body.

Readiness is awaited on duplicates of the two fds (``loop.add_reader`` / ``add_writer``; uvloop
refuses a transport's own fd, and a duplicate is an epoll registration of its own), so the relay
runs on the event loop, without a thread, and ends like any copy: its task cancelled at the
assertion's ``exp`` or on a revocation. The duplicates keep both sockets open until the relay
closes them, whatever the transports do meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from typing import Final

BUFFER_BYTES: Final = 256 * 1024
"""Read and written in one go. Measured against 64 KiB to 1 MiB (``make bench``, ingress/README.md):
smaller costs more system calls a MB, larger leaves the copy out of the CPU's cache."""
YIELD_EVERY_BYTES: Final = 4 * 1024 * 1024
"""While both sockets keep up, the relay gives the event loop a turn after this many bytes: other
viewers' requests are answered meanwhile, and a stream's end (``exp``, a revocation) takes effect."""
AVAILABLE: Final = hasattr(os, "readv") and hasattr(os, "dup")


class SourceEndedError(Exception):
    """The app's socket ended or failed before the body's last byte."""


def plain_socket(transport: asyncio.BaseTransport) -> socket.socket | None:
    """The TCP socket under ``transport`` when its bytes go as they are (no TLS), else ``None``."""
    if transport.is_closing() or transport.get_extra_info("sslcontext") is not None:
        return None
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    return sock  # type: ignore[no-any-return]


class SocketRelay:
    """Duplicates of the app's socket (``source``) and the viewer's (``sink``) taken at once, so
    the relay holds both sockets whatever their transports do meanwhile. :meth:`close` it."""

    def __init__(self, source: socket.socket, sink: socket.socket) -> None:
        self._fds: list[int] = []
        try:
            self._source = self._own(os.dup(source.fileno()))
            self._sink = self._own(os.dup(sink.fileno()))
        except BaseException:
            self.close()
            raise

    def _own(self, fd: int) -> int:
        self._fds.append(fd)
        return fd

    def close(self) -> None:
        while self._fds:
            os.close(self._fds.pop())

    async def move(self, length: int, moved: Callable[[int], None]) -> None:
        """Move ``length`` bytes from the app's socket to the viewer's; ``moved(n)`` as bytes reach
        the viewer's socket. Never reads past ``length`` (the app's next answer stays on its socket).
        Raises :class:`SourceEndedError` when the app's socket ends or fails first and
        ``ConnectionResetError`` when the viewer's fails."""
        loop = asyncio.get_running_loop()
        buffer = memoryview(bytearray(min(length, BUFFER_BYTES)))
        size = len(buffer)
        to_come = length  # still on the app's socket
        start = end = 0  # buffer[start:end]: read, not yet written
        until_turn = YIELD_EVERY_BYTES
        while to_come or end > start:
            progressed = False
            if to_come and end < size:
                try:
                    n = os.readv(self._source, [buffer[end : min(size, end + to_come)]])
                except BlockingIOError:  # nothing received yet
                    n = -1
                except OSError as error:
                    raise SourceEndedError(f"reading from the app failed ({error.strerror})") from None
                if n == 0:
                    raise SourceEndedError("the app closed the connection mid-answer")
                if n > 0:
                    to_come -= n
                    end += n
                    progressed = True
            if end > start:
                try:
                    n = os.write(self._sink, buffer[start:end])
                except BlockingIOError:  # the viewer's socket buffer is full
                    n = 0
                except OSError as error:
                    raise ConnectionResetError(f"writing to the viewer failed ({error.strerror})") from None
                if n > 0:
                    start += n
                    moved(n)
                    progressed = True
                    if start == end:
                        start = end = 0
                    until_turn -= n
                    if until_turn <= 0:  # neither side made us wait lately: the loop's turn
                        until_turn = YIELD_EVERY_BYTES
                        await asyncio.sleep(0)
            if not progressed:
                if end > start:
                    await _ready(loop, self._sink, writable=True)
                else:
                    await _ready(loop, self._source, writable=False)


async def _ready(loop: asyncio.AbstractEventLoop, fd: int, *, writable: bool) -> None:
    """Wait until ``fd`` can be read (or written); a hang-up or an error counts as ready."""
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    add, remove = (loop.add_writer, loop.remove_writer) if writable else (loop.add_reader, loop.remove_reader)
    add(fd, wake)
    try:
        await ready
    finally:
        remove(fd)
