"""Zero-copy relay of a large response body: the app's socket -> a pipe -> the viewer's socket.

Relayed through Python, each byte of a download is copied twice by the kernel (``recv`` into the
ingress, ``send`` out of it) and the ingress cost about as much CPU per MB as the client and the
app together (``make bench``). With ``splice(2)`` (Linux) the kernel moves references to the
received pages into a pipe and from the pipe into the viewer's socket: no copy through the ingress.

Only the bytes of a ``Content-Length`` body still on the app's socket go this way, and only on
plain TCP both ways (TLS bytes must be decrypted and encrypted by the process). The caller hands
over both sockets with nothing buffered: the app's transport paused (libuv stops reading its fd, so
no byte of the body reaches Python meanwhile) and the viewer's write buffer empty (nothing of ours
is written meanwhile: one request is answered at a time), so no byte is reordered. The viewer's
transport keeps reading: a pipelined request is parsed and waits, as during any body.

Readiness is awaited on duplicates of the two fds (``loop.add_reader`` / ``add_writer``; uvloop
refuses a transport's own fd, and a duplicate is an epoll registration of its own), so the relay
runs on the event loop, without a thread, and ends like any copy: its task cancelled at the
assertion's ``exp`` or on a revocation. The duplicates keep both sockets open until the relay
closes them, whatever the transports do meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
import sys
from collections.abc import Callable
from typing import Final

_PIPE_BYTES: Final = 1 << 20
"""The pipe's capacity asked for (``F_SETPIPE_SZ``; the default is 64 KiB): fewer system calls a MB."""
_FLAGS: Final = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)
_F_SETPIPE_SZ: Final = getattr(fcntl, "F_SETPIPE_SZ", 1031)
AVAILABLE: Final = sys.platform == "linux" and hasattr(os, "splice")


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


class SpliceRelay:
    """A pipe, and duplicates of the app's socket (``source``) and the viewer's (``sink``) taken at
    once, so the relay holds both sockets whatever their transports do meanwhile. :meth:`close` it."""

    def __init__(self, source: socket.socket, sink: socket.socket) -> None:
        self._fds: list[int] = []
        try:
            self._source = self._own(os.dup(source.fileno()))
            self._sink = self._own(os.dup(sink.fileno()))
            self._read_end, self._write_end = (self._own(fd) for fd in os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC))
        except BaseException:
            self.close()
            raise
        with contextlib.suppress(OSError):  # over /proc/sys/fs/pipe-max-size: the default
            fcntl.fcntl(self._write_end, _F_SETPIPE_SZ, _PIPE_BYTES)

    def _own(self, fd: int) -> int:
        self._fds.append(fd)
        return fd

    def close(self) -> None:
        while self._fds:
            os.close(self._fds.pop())

    async def move(self, length: int, moved: Callable[[int], None]) -> None:
        """Move ``length`` bytes from the app's socket to the viewer's; ``moved(n)`` as bytes reach
        the viewer's socket. Raises :class:`SourceEndedError` when the app's socket ends or fails
        first and ``ConnectionResetError`` when the viewer's fails."""
        loop = asyncio.get_running_loop()
        to_come = length  # still on the app's socket
        in_pipe = 0
        while to_come or in_pipe:
            progressed = False
            if to_come:
                try:
                    n = os.splice(self._source, self._write_end, min(to_come, _PIPE_BYTES), flags=_FLAGS)
                except BlockingIOError:  # nothing received yet, or the pipe is full
                    n = -1
                except OSError as error:
                    raise SourceEndedError(f"reading from the app failed ({error.strerror})") from None
                if n == 0:
                    raise SourceEndedError("the app closed the connection mid-answer")
                if n > 0:
                    to_come -= n
                    in_pipe += n
                    progressed = True
            if in_pipe:
                try:
                    n = os.splice(self._read_end, self._sink, in_pipe, flags=_FLAGS)
                except BlockingIOError:  # the viewer's socket buffer is full
                    n = 0
                except OSError as error:
                    raise ConnectionResetError(f"writing to the viewer failed ({error.strerror})") from None
                if n > 0:
                    in_pipe -= n
                    moved(n)
                    progressed = True
            if not progressed:
                if in_pipe:
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
