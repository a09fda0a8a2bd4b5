"""The viewer side of the ingress: body-less HTTP/1.1 requests served straight off the socket.

Almost everything a preview loads is a ``GET`` of a subresource: no body, no upgrade. Those are
parsed with httptools and relayed without aiohttp's request and response objects, which were half
the ingress's CPU per request (``make bench``): by :meth:`IngressProxy.answer_now` with no task at
all when only the app's answer is waited for (an assertion seen before, an idle connection to the
app, an answer with no body or a small one), else by :meth:`IngressProxy.relay_simple` on a task
that answers the connection's queue. Anything
else (a request with a body, a WebSocket or other upgrade, ``Expect``) is aiohttp's: the connection
is handed over to aiohttp's server with that request's bytes as they were received, and stays
there. So uploads, streaming request bodies and WebSockets run on aiohttp as before.

Requests on one connection are answered in order, one at a time; what arrives meanwhile is parsed
and queued, and reading pauses only when over :data:`MAX_HEAD_BYTES` waits (a pause and a resume
cost two system calls, on every request if done each time). A head
over :data:`MAX_HEAD_BYTES` gets 431, a malformed request 400, then the connection closes. An idle
connection closes after :data:`KEEPALIVE_SECONDS` (aiohttp's own default).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Final, Protocol, cast

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from preview_ingress.flow import WriteFlow

logger = logging.getLogger("preview_ingress")

MAX_HEAD_BYTES = 128 * 1024
KEEPALIVE_SECONDS = 75.0
_LINGER_SECONDS = 2.0
# What makes a request aiohttp's (lower-case names): a body, an upgrade, an expectation.
_ANOTHER_PATH: Final = frozenset({"transfer-encoding", "upgrade", "expect"})
_FRAMING: Final = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
_HAND_OVER: Final = "hand over"
# Whether a header name (as spelled) is one of _FRAMING: remembered for the names answers carry.
_FRAMING_NAMES: dict[str, bool] = {}
_MAX_FRAMING_NAMES = 1024


@dataclass(slots=True)
class ViewerRequest:
    """What the proxy reads of a request: the same names as aiohttp's ``web.Request``."""

    method: str
    raw_path: str
    headers: CIMultiDictProxy[str]
    remote: str | None
    keep_alive: bool
    scheme: str = "http"


class Relay(Protocol):
    """What a viewer's connection asks of the proxy behind it (:class:`.proxy.IngressProxy`)."""

    viewer_connections: set[ViewerConnection]

    def answer_now(self, viewer: ViewerConnection, request: ViewerRequest) -> bool: ...

    async def relay_simple(self, viewer: ViewerConnection, request: ViewerRequest) -> bool: ...


class ViewerConnection(WriteFlow):
    """One connection from CloudFront (or a viewer): the fast path, or handed over to aiohttp."""

    def __init__(self, proxy: Relay, aiohttp_protocol: Callable[[], asyncio.Protocol]) -> None:
        self._proxy = proxy
        self._aiohttp_protocol = aiohttp_protocol
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        self._received = bytearray()
        """The bytes of the request being parsed (and after): what aiohttp gets on a hand-over."""
        self._queue: deque[ViewerRequest | int | str] = deque()
        self._serving: asyncio.Task[None] | None = None
        """The task answering the queue, if one is."""
        self._answering = False
        """A request is being answered with no task (:meth:`IngressProxy.answer_now`)."""
        self._handing_over = False
        self._discarding = False
        self._broken = False
        self._reading_paused = False
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_since: float | None = None
        """When the connection last became idle (``None`` while a request is in hand)."""
        self.transport: asyncio.Transport | None = None
        self.remote: str | None = None
        self.closed = False
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        self._head_bytes = 0

    # ---- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport
        peer = transport.get_extra_info("peername")
        self.remote = str(peer[0]) if isinstance(peer, tuple) and peer else None
        self._proxy.viewer_connections.add(self)
        self._idle_since = self._loop.time()
        self._idle_timer = self._loop.call_later(KEEPALIVE_SECONDS, self._close_if_idle)

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return
        self._received += data
        if not (self._handing_over or self._broken):
            try:
                self._parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                pass  # its head already marked it for aiohttp
            except httptools.HttpParserError:
                self._broken = True
                self._queue.append(400)
            if not self._queue and len(self._received) > MAX_HEAD_BYTES:
                self._broken = True
                self._queue.append(431)
        if not self._queue:
            return
        if self._serving is None and not self._answering:
            self._answer_next()
        elif len(self._received) > MAX_HEAD_BYTES and not self._reading_paused and self.transport is not None:
            # More waits behind the request being answered (pipelined, or a body for aiohttp):
            # the kernel holds the rest. Not paused otherwise: a pause costs two syscalls a request.
            self._reading_paused = True
            self.transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._proxy.viewer_connections.discard(self)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self.writing_lost("the viewer went away")

    # ---- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        self._headers.append((name.decode("latin-1"), value.decode("utf-8", "surrogateescape")))

    def on_headers_complete(self) -> None:
        if self._handing_over or self._broken:
            return
        if self._head_bytes > MAX_HEAD_BYTES:  # arrived whole in one read: not caught by data_received
            self._broken = True
            self._queue.append(431)
            return
        for name, value in self._headers:
            lower = name.lower()
            if lower in _ANOTHER_PATH or (lower == "content-length" and value != "0"):
                self._handing_over = True
                self._queue.append(_HAND_OVER)
                return

    def on_message_complete(self) -> None:
        if self._handing_over or self._broken:
            return
        self._idle_since = None
        self._queue.append(
            ViewerRequest(
                method=self._parser.get_method().decode("ascii"),
                raw_path=self._url.decode("utf-8", "surrogateescape"),
                headers=CIMultiDictProxy(CIMultiDict(self._headers)),
                remote=self.remote,
                keep_alive=self._parser.should_keep_alive(),
            )
        )
        # A body-less request ends with its head: what follows is the next request's.
        received = self._received
        start = 0
        while received.startswith(b"\r\n", start):
            start += 2
        end = received.find(b"\r\n\r\n", start)
        del received[: end + 4 if end >= 0 else len(received)]

    # ---- answering -------------------------------------------------------------------------

    def _answer_next(self) -> None:
        """Answer the first request queued: with no task where the proxy can, else on the task that
        answers the queue."""
        item = self._queue.popleft()
        if isinstance(item, ViewerRequest) and not self.closed:
            self._answering = True
            try:
                if self._proxy.answer_now(self, item):
                    return
            except Exception:  # as _serve: never out into the transport's callback (the app's, maybe)
                logger.exception("the fast path failed on a request; its connection is closed")
                self.close()
                return
            self._answering = False
        self._queue.appendleft(item)
        self._serving = self._loop.create_task(self._serve())

    def answered(self, keep_alive: bool) -> None:
        """The request :meth:`IngressProxy.answer_now` took is answered: on to the next, or close."""
        self._answering = False
        if not keep_alive or self.closed:
            self.close()
        elif self._queue:
            self._answer_next()
        elif self.transport is not None:
            self._idle_since = self._loop.time()
            self._resume_reading()

    def answer_on_task(self, answering: Coroutine[Any, Any, bool]) -> None:
        """The request :meth:`IngressProxy.answer_now` took goes on in a task: ``answering`` (its
        answer: ``False`` to close), then the rest of the queue."""
        self._answering = False
        self._serving = self._loop.create_task(self._serve(answering))

    async def _serve(self, answering: Coroutine[Any, Any, bool] | None = None) -> None:
        try:
            if answering is not None and (not await answering or self.closed):
                self.close()
                return
            while self._queue and not self.closed:
                item = self._queue.popleft()
                if item == _HAND_OVER:
                    self._hand_over()
                    return
                if isinstance(item, int):
                    self._refuse(item)
                    return
                assert isinstance(item, ViewerRequest)
                if not await self._proxy.relay_simple(self, item) or self.closed:
                    self.close()
                    return
        except ConnectionError:  # the viewer went away mid-answer
            self.close()
        except Exception:
            logger.exception("the fast path failed on a request; its connection is closed")
            self.close()
        finally:
            self._serving = None
        if not self.closed and self.transport is not None:
            self._idle_since = self._loop.time()  # the timer, still set, looks at this when it fires
            self._resume_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()

    def _hand_over(self) -> None:
        """aiohttp's server takes the connection from the request being parsed on."""
        transport = self.transport
        assert transport is not None
        self._proxy.viewer_connections.discard(self)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        protocol = self._aiohttp_protocol()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        received = bytes(self._received)
        self._received.clear()
        self._resume_reading()
        if received:
            protocol.data_received(received)

    def _refuse(self, status: int) -> None:
        """Answer ``status`` and close, reading (and dropping) what the viewer still sends for a
        moment first: closing on unread bytes resets the connection, and the answer with it."""
        reason = "Request Header Fields Too Large" if status == 431 else "Bad Request"
        self.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode("ascii")
        )
        transport = self.transport
        assert transport is not None
        self._discarding = True
        self._received.clear()
        if transport.can_write_eof():
            transport.write_eof()
        self._resume_reading()
        self._loop.call_later(_LINGER_SECONDS, self.close)

    def _close_if_idle(self) -> None:
        """The keep-alive timer: close after :data:`KEEPALIVE_SECONDS` idle, else look again later.

        One timer for the connection's life, moved only when it fires, not one armed and cancelled
        per request (about 2 µs of every small GET)."""
        self._idle_timer = None
        if self.closed or self.transport is None:
            return
        wait = KEEPALIVE_SECONDS
        if self._serving is None and self._idle_since is not None:
            wait = self._idle_since + KEEPALIVE_SECONDS - self._loop.time()
            if wait <= 0:
                self.close()
                return
        self._idle_timer = self._loop.call_later(wait, self._close_if_idle)

    @property
    def gone(self) -> bool:
        """Closed, or closing: nothing more can be written to the viewer."""
        return self.closed or self.transport is None or self.transport.is_closing()

    def write(self, data: bytes) -> None:
        if self.gone:
            raise ConnectionResetError("the viewer went away")
        assert self.transport is not None
        self.transport.write(data)

    def set_write_buffer(self, high: int) -> None:
        """Buffer up to ``high`` bytes for the viewer before pausing the writer (a large body)."""
        if self.transport is not None:
            self.transport.set_write_buffer_limits(high=high)

    async def flushed(self) -> None:
        """Return once every byte written so far has left for the kernel (the write buffer empty)."""
        if self.transport is None:
            raise ConnectionResetError("the viewer went away")
        self.transport.set_write_buffer_limits(high=0)  # pauses us while anything is buffered
        await self.drain()
        if self.closed:
            raise ConnectionResetError("the viewer went away")

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


def response_head(
    status: int,
    reason: str,
    headers: Iterable[tuple[str, str]],
    *,
    content_length: int | None,
    chunked: bool,
    keep_alive: bool,
) -> bytes:
    """An HTTP/1.1 response head: ``headers`` minus any framing, then ours."""
    lines = [f"HTTP/1.1 {status} {reason}\r\n"]
    framing_names = _FRAMING_NAMES
    for name, value in headers:
        framing = framing_names.get(name)
        if framing is None:
            framing = name.lower() in _FRAMING
            if len(framing_names) < _MAX_FRAMING_NAMES:
                framing_names[name] = framing
        if framing or "\n" in value or "\r" in value:
            continue
        lines.append(f"{name}: {value}\r\n")
    if content_length is not None:
        lines.append(f"Content-Length: {content_length}\r\n")
    elif chunked:
        lines.append("Transfer-Encoding: chunked\r\n")
    if not keep_alive:
        lines.append("Connection: close\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("utf-8", "surrogateescape")
