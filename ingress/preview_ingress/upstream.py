"""The ingress's HTTP/1.1 client to the sandbox apps: pooled keep-alive connections, bodies streamed.

Why not aiohttp's ``ClientSession`` on this hop: the ingress relays what it receives, it does not
need redirects, cookies, auth, proxies, tracing, timeouts per phase or decompression, and paid for
them on every request: about a third of the ingress's CPU per small GET (``make bench``). This
client does only the relay: it writes the request head as given and the body as it arrives
(``Content-Length`` kept, else chunked), and parses the answer with **httptools** (the bindings to
llhttp, Node.js's HTTP parser, that uvicorn uses) straight into a bounded queue the proxy reads
from. WebSockets still use aiohttp's client (``proxy.py``).

Connections are kept per upstream origin and reused last-in first-out; an idle one is closed after
:data:`IDLE_SECONDS` (below Node's and uvicorn's 5 s keep-alive, so the app does not close it under
us in the usual case). A request without a body that finds its reused connection closed before
the first byte of an answer is sent once more on a new connection, as browsers do.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

from preview_ingress.flow import WriteFlow
from preview_ingress.socket_relay import plain_socket

IDLE_SECONDS = 4.0
MAX_HEAD_BYTES = 256 * 1024
"""An app's answer head (status line and headers, 1xx answers included) longer than this is refused."""
# A response body buffered past this pauses reading from the app until the viewer catches up.
_HIGH_WATER = 1 << 20
_LOW_WATER = 1 << 18
_NO_BODY_STATUSES = frozenset({204, 304})


class UpstreamUnreachableError(Exception):
    """No answer's head from the app: refused, timed out, reset, or not HTTP."""


class _PastTheAnswerError(Exception):
    """The app wrote more after its answer, in the same read (raised to stop the parser there)."""


class UpstreamBodyError(Exception):
    """The app broke off (or sent garbage) after the head: the body is cut short."""


@dataclass(frozen=True)
class Origin:
    """Where one app listens: ``http(s)://host:port``."""

    scheme: str
    host: str
    port: int
    authority: str
    """``host[:port]`` as the base URL spells it: the ``Host`` the app gets."""
    url: str
    """``scheme://authority``: what its connections are pooled under (a str keeps its hash; this
    dataclass would hash its four fields in Python on every request)."""

    @classmethod
    def of(cls, base_url: str) -> Origin:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or parts.hostname is None:
            raise ValueError(f"not an http(s) origin: {base_url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.netloc, f"{parts.scheme}://{parts.netloc}")


AnswerCallback = Callable[["UpstreamResponse | UpstreamUnreachableError"], None]
"""What :meth:`UpstreamPool.send_now` calls once the answer's head is in (or none will come)."""


class _BodyChunks:
    """An answer's body as it arrives: an async iterator (not a generator, which mypyc cannot compile)."""

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection

    def __aiter__(self) -> _BodyChunks:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._connection.next_chunk()
        if chunk is None:
            raise StopAsyncIteration
        return chunk


class UpstreamResponse:
    """An answer's head, and its body as it arrives (:meth:`chunks`, :meth:`read`)."""

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection
        self.status = connection.status
        self.reason = connection.reason
        self.headers = connection.headers
        self.content_length = connection.content_length

    def chunks(self) -> AsyncIterator[bytes]:
        return _BodyChunks(self._connection)

    async def read(self) -> bytes:
        whole = self._connection.whole_body()
        if whole is not None:  # a small answer usually arrives with its head
            return whole
        chunks = []
        while (chunk := await self._connection.next_chunk()) is not None:
            chunks.append(chunk)
        return b"".join(chunks)

    def whole(self) -> bytes | None:
        """The body, if all of it is in; else ``None`` (:meth:`read` waits for it)."""
        return self._connection.whole_body()

    def body_socket(self) -> socket.socket | None:
        """The socket the rest of a ``Content-Length`` body is still to come on, for a relay that
        moves it itself (:mod:`preview_ingress.socket_relay`); ``None`` if it is TLS, or the exchange
        failed."""
        return self._connection.body_socket()

    def hand_over_body(self) -> tuple[bytes, int]:
        """Stop reading from the app (:meth:`body_socket`'s caller reads the rest): the body bytes
        already received, and how many are still to come on the socket."""
        return self._connection.hand_over_body()

    def body_relayed(self) -> None:
        """The caller read the rest of the body exactly: the connection may be reused."""
        self._connection.body_relayed()

    def release(self) -> None:
        """Back to the pool when the answer was read whole and the app keeps the connection; else closed."""
        self._connection.finish_exchange()


class _Connection(WriteFlow):
    """One keep-alive connection to an app; one exchange at a time (no pipelining)."""

    def __init__(self, pool: UpstreamPool, origin: Origin) -> None:
        self._pool = pool
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        """When the connection went back to the pool (the loop's clock)."""
        self._parser: httptools.HttpResponseParser | None = None
        self._loop = asyncio.get_running_loop()
        self._head_pending = False
        """An exchange waits for its answer's head (status line and headers)."""
        self._head: asyncio.Future[None] | None = None
        """:meth:`exchange`'s wait for the head."""
        self._on_head: AnswerCallback | None = None
        """:meth:`send`'s callback for the head."""
        self._waiter: asyncio.Future[None] | None = None
        self._body: deque[bytes] = deque()
        self._buffered = 0
        self._reading_paused = False
        self._complete = False
        self._error: Exception | None = None
        self._until_close = False
        self._keep_alive = False
        self._informational = False
        self._no_body = False
        self._parsed_body = 0
        self._head_bytes = 0
        self._unparsed_body: int | None = None
        """Bytes of the body still to come past the parser (a ``Content-Length`` body)."""
        self._sender: asyncio.Task[None] | None = None
        self.status = 0
        self.reason = ""
        self.headers: list[tuple[str, str]] = []
        self.content_length: int | None = None
        self._reason_bytes = b""
        self._header_bytes: list[tuple[bytes, bytes]] = []

    # ---- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport

    def data_received(self, data: bytes) -> None:
        if self._parser is None:  # an idle connection the app talks on: not HTTP we can follow
            self._close()
            return
        if self._unparsed_body is not None:
            self._take_body(data)
            return
        if self._head_pending:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:  # a hostile or broken app: never buffered without end
                self._fail(f"the app's answer head is over {MAX_HEAD_BYTES} bytes")
                self._close()
                return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            if not isinstance(error.__context__, _PastTheAnswerError):
                self._fail(f"the app's answer is not HTTP/1.1 ({error})")
                self._close()
                return
            self._keep_alive = False  # what came past the answer is dropped; the connection closes after it
        if self._head_pending:
            return
        if not self._complete and self._error is None and self.content_length is not None:
            # The rest of a body of known length is taken as it comes: no parser, no copy.
            self._unparsed_body = self.content_length - self._parsed_body
        if self._on_head is not None:
            self._head_arrived(None)

    def _take_body(self, data: bytes) -> None:
        remaining = self._unparsed_body
        assert remaining is not None
        if len(data) > remaining:  # more than the answer: not something we can follow
            self._keep_alive = False
            data = data[:remaining]
        self._unparsed_body = remaining - len(data)
        if data:
            self.on_body(data)
        if self._unparsed_body == 0:
            self._complete = True
            self._wake()

    def eof_received(self) -> bool:
        return False  # close the transport: we never half-close

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool.forget(self)
        if self._parser is None:
            return
        if self._head_pending:
            self._fail("the app closed the connection before answering")
        elif not self._complete:
            if self._until_close and self._error is None:
                self._complete = True  # a body delimited by the end of the connection
                self._wake()
            else:
                self._fail("the app closed the connection mid-answer")
        self.writing_lost("the app closed the connection")

    # ---- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._complete:  # a second answer in the read that ended this one: no request asked for it
            raise _PastTheAnswerError
        self._reason_bytes = b""
        self._header_bytes = []

    def on_status(self, status: bytes) -> None:
        self._reason_bytes += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes.append((name, value))

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        status = self._parser.get_status_code()
        if status < 200:  # 100 Continue, 103 Early Hints: not relayed; the answer follows
            self._informational = True
            return
        self.status = status
        self.reason = self._reason_bytes.decode("latin-1")
        headers = [
            (name.decode("latin-1"), value.decode("utf-8", "surrogateescape"))
            for name, value in self._header_bytes
        ]
        self.headers = headers
        framed = False
        for name, value in headers:
            lower = name.lower()
            if lower == "content-length" and value.isdigit():
                self.content_length = int(value)
                framed = True
            elif lower == "transfer-encoding":
                framed = True
        self._keep_alive = self._parser.should_keep_alive()
        if self._no_body or status in _NO_BODY_STATUSES:
            self._complete = True
        else:
            self._until_close = not framed
        self._head_pending = False
        if self._head is not None and not self._head.done():
            self._head.set_result(None)

    def on_body(self, body: bytes) -> None:
        self._parsed_body += len(body)
        self._body.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        assert self._parser is not None
        self._keep_alive = self._keep_alive and self._parser.should_keep_alive()
        self._complete = True
        self._wake()

    # ---- one exchange ----------------------------------------------------------------------

    def _begin(self, no_body: bool) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._head_pending = True
        self._head_bytes = 0
        self._no_body = no_body

    async def exchange(
        self, head: bytes, body: AsyncIterator[bytes] | None, chunked: bool, no_body: bool
    ) -> UpstreamResponse:
        self._begin(no_body)
        self._head = self._loop.create_future()
        assert self.transport is not None
        if body is None:
            self.transport.write(head)
        else:
            self._sender = asyncio.ensure_future(self._send_body(head, body, chunked))
        await self._head
        return UpstreamResponse(self)

    def send(self, head: bytes, no_body: bool, on_head: AnswerCallback) -> None:
        """:meth:`exchange` for a request without a body, with no task waiting: ``on_head`` gets the
        answer (its head in, its body maybe whole) or, the connection closed already, why none came."""
        self._begin(no_body)
        self._on_head = on_head
        assert self.transport is not None
        self.transport.write(head)

    def _head_arrived(self, error: UpstreamUnreachableError | None) -> None:
        on_head, self._on_head = self._on_head, None
        assert on_head is not None
        if error is None:
            on_head(UpstreamResponse(self))
        else:
            self.finish_exchange()
            on_head(error)

    async def _send_body(self, head: bytes, body: AsyncIterator[bytes], chunked: bool) -> None:
        assert self.transport is not None
        self.transport.write(head)
        try:
            async for chunk in body:
                if not chunk:
                    continue
                if chunked:
                    self.transport.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
                else:
                    self.transport.write(chunk)
                await self.drain()
            if chunked:
                self.transport.write(b"0\r\n\r\n")
        except (ConnectionError, OSError) as error:
            self._fail(f"sending the body failed ({type(error).__name__})")
            self._close()
        except Exception as error:  # the viewer's body broke off: the app must not take it as whole
            self._fail(f"the viewer's body broke off ({type(error).__name__})")
            self._close()

    async def next_chunk(self) -> bytes | None:
        """What has arrived of the body since the last call (waiting for some), ``None`` at its end."""
        while True:
            if self._body:
                chunk = self._body.popleft() if len(self._body) == 1 else b"".join(self._body)
                self._body.clear()
                self._buffered = 0
                if self._reading_paused and self._buffered <= _LOW_WATER and self.transport is not None:
                    self._reading_paused = False
                    self.transport.resume_reading()
                return chunk
            if self._complete:
                return None
            if self._error is not None:
                raise UpstreamBodyError(str(self._error))
            self._waiter = self._loop.create_future()
            await self._waiter

    def whole_body(self) -> bytes | None:
        """The body, taken, if all of it has arrived; else ``None`` (read it with :meth:`next_chunk`)."""
        if not self._complete or self._error is not None:
            return None
        whole = b"".join(self._body)
        self._body.clear()
        self._buffered = 0
        return whole

    def body_socket(self) -> socket.socket | None:
        if self.closed or self._error is not None or self._unparsed_body is None or self.transport is None:
            return None
        return plain_socket(self.transport)

    def hand_over_body(self) -> tuple[bytes, int]:
        assert self.transport is not None
        assert self._unparsed_body is not None
        if not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()
        received = b"".join(self._body)
        self._body.clear()
        self._buffered = 0
        to_come, self._unparsed_body = self._unparsed_body, 0
        self._complete = False  # until the caller says the rest arrived: else never reused
        return received, to_come

    def body_relayed(self) -> None:
        self._complete = True

    def finish_exchange(self) -> None:
        sender_done = self._sender is None or self._sender.done()
        reusable = (
            self._complete
            and self._keep_alive
            and not self._until_close
            and sender_done
            and self._error is None
            and not self.closed
            and not self._body
        )
        if self._sender is not None and not self._sender.done():
            self._sender.cancel()
        self._sender = None
        self._parser = None
        self._head_pending = False
        self._head = None
        self._on_head = None
        self._waiter = None
        self._complete = False
        self._error = None
        self._until_close = False
        self._no_body = False
        self._body.clear()
        self._buffered = 0
        self._parsed_body = 0
        self._unparsed_body = None
        self.content_length = None
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        if reusable:
            self._pool.put_back(self)
        else:
            self._close()

    # ---- internals -------------------------------------------------------------------------

    def _fail(self, why: str) -> None:
        if self._head_pending:
            self._head_pending = False
            if self._head is not None and not self._head.done():
                self._head.set_exception(UpstreamUnreachableError(why))
            elif self._on_head is not None:
                self._head_arrived(UpstreamUnreachableError(why))
                return
        elif self._error is None:
            self._error = UpstreamBodyError(why)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def close_if_idle(self) -> None:
        if self._parser is None:
            self._close()

    def abort(self) -> None:
        self._fail("the ingress is shutting down")
        if self.transport is not None:
            self.transport.abort()


class UpstreamPool:
    """Connections to the apps: as many as the requests in flight, and up to ``max_idle`` per app kept."""

    def __init__(
        self, max_idle: int, connect_timeout: float, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._idle: dict[str, list[_Connection]] = {}
        """Idle connections by :attr:`Origin.url`."""
        self._sweep: asyncio.TimerHandle | None = None
        self._open: set[_Connection] = set()
        self._max_idle = max_idle
        self._connect_timeout = connect_timeout
        self._ssl = ssl_context

    async def request(
        self,
        origin: Origin,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: AsyncIterator[bytes] | None = None,
    ) -> UpstreamResponse:
        """Send one request (``target``: path and query exactly as received) and return its answer's head.

        ``headers`` are sent as given, with ``Host``; a body goes with its ``Content-Length`` when
        ``headers`` carry one, else chunked. Raises :class:`UpstreamUnreachableError`."""
        head, chunked = _request_head(method, target, headers, body is not None)
        no_body = method == "HEAD"
        connection = self._idle_connection(origin)
        if connection is not None and body is None:
            try:
                return await connection.exchange(head, None, False, no_body)
            except UpstreamUnreachableError:
                connection.finish_exchange()  # closed under us while idle: once more, on a new one
                connection = None
            except BaseException:
                connection.finish_exchange()
                raise
        if connection is None:
            connection = await self._connect(origin)
        try:
            return await connection.exchange(head, body, chunked, no_body)
        except BaseException:
            connection.finish_exchange()
            raise

    def send_now(
        self,
        origin: Origin,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        on_head: AnswerCallback,
    ) -> bool:
        """:meth:`request` for a request without a body, on an idle connection, with no task waiting:
        ``on_head`` gets the answer, or the :class:`UpstreamUnreachableError` (the caller may try
        once more with :meth:`request`, as :meth:`request` does on a reused connection closed under
        it). ``False``: no idle connection, nothing sent."""
        connection = self._idle_connection(origin)
        if connection is None:
            return False
        connection.send(_request_head(method, target, headers, False)[0], method == "HEAD", on_head)
        return True

    def _idle_connection(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin.url)
        while idle:
            connection = idle.pop()
            if self._loop.time() - connection.idle_since >= IDLE_SECONDS:  # the sweep is late
                connection.close_if_idle()
                continue
            transport = connection.transport
            if not connection.closed and transport is not None and not transport.is_closing():
                return connection
        return None

    async def _connect(self, origin: Origin) -> _Connection:
        loop = self._loop
        secure = origin.scheme == "https"
        if secure and self._ssl is None:
            self._ssl = ssl.create_default_context()  # the system's CAs, loaded once (milliseconds)
        context = self._ssl if secure else None
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, connection = await loop.create_connection(
                    lambda: _Connection(self, origin),
                    origin.host,
                    origin.port,
                    ssl=context,
                    server_hostname=origin.host if secure else None,
                )
        except (OSError, TimeoutError, ssl.SSLError) as error:
            raise UpstreamUnreachableError(f"cannot connect ({type(error).__name__})") from None
        self._open.add(connection)
        return connection

    def put_back(self, connection: _Connection) -> None:
        idle = self._idle.setdefault(connection.origin.url, [])
        if len(idle) >= self._max_idle:
            connection.close_if_idle()
            return
        connection.idle_since = self._loop.time()
        idle.append(connection)
        if self._sweep is None:
            self._sweep = self._loop.call_later(IDLE_SECONDS, self._close_idle)

    def _close_idle(self) -> None:
        """Close the connections idle for :data:`IDLE_SECONDS`; come back when the next one will be.

        One timer for the pool, not one armed and cancelled per request."""
        self._sweep = None
        now = self._loop.time()
        due: float | None = None
        for idle in self._idle.values():
            expired = [connection for connection in idle if now - connection.idle_since >= IDLE_SECONDS]
            for connection in expired:
                idle.remove(connection)
                connection.close_if_idle()
            for connection in idle:
                due = min(due, connection.idle_since) if due is not None else connection.idle_since
        if due is not None:
            self._sweep = self._loop.call_later(max(due + IDLE_SECONDS - now, 0.0), self._close_idle)

    def forget(self, connection: _Connection) -> None:
        self._open.discard(connection)
        idle = self._idle.get(connection.origin.url)
        if idle and connection in idle:
            idle.remove(connection)

    def close(self) -> None:
        """Close every connection, idle or busy (at shutdown)."""
        for connection in list(self._open):
            connection.abort()
        self._idle.clear()
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None


def _request_head(
    method: str, target: str, headers: Sequence[tuple[str, str]], body: bool
) -> tuple[bytes, bool]:
    """A request's head, and whether its body goes chunked (a body, no ``Content-Length``)."""
    lines = [f"{method} {target} HTTP/1.1\r\n"]
    chunked = body
    for name, value in headers:
        if "\n" in value or "\r" in value:
            raise ValueError(f"a line break in the value of {name}")
        if chunked and name.lower() == "content-length":
            chunked = False
        lines.append(f"{name}: {value}\r\n")
    if chunked:
        lines.append("Transfer-Encoding: chunked\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("utf-8", "surrogateescape"), chunked
