"""A threaded loopback HTTP server that hands each request to one function, and logs it safely.

The log line names the server, method, host, path and status, each field escaped and with
credential-shaped text redacted (:func:`http_messages.log_field`); of the query only parameter
names appear; headers (``Cookie``, ``Authorization``) and bodies are never logged.

Request bodies are read as API Gateway's front end accepts them: by ``Content-Length`` or
``Transfer-Encoding: chunked`` (RFC 9112 6-7), at most :data:`MAX_BODY_BYTES` (API Gateway's
payload quota, answered ``413`` with its text). A framing the server cannot trust - a
``Content-Length`` that is not one number, both ``Content-Length`` and ``Transfer-Encoding``
(a smuggling vector, RFC 9112 6.3), a malformed chunk - is answered ``400`` and the connection
closed; a transfer coding other than ``chunked`` is ``501`` (RFC 9112 6.1). Never a dropped
connection without an answer.
"""

from __future__ import annotations

import dataclasses
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, TextIO

from preview_local.http_messages import HttpRequest, HttpResponse, log_field
from preview_local.streams import StreamRelay

Responder = Callable[[HttpRequest], HttpResponse | StreamRelay]


class TakeOver(Protocol):
    """Takes a connection over before its body is read (the local CloudFront's relay to an origin)."""

    @property
    def log_reason(self) -> str | None: ...

    def run(self, client: socket.socket, reader: Any, length: int | None) -> str: ...


# Asked with the request head (no body yet): a TakeOver, an answer, or None (read the body, respond).
HeadHandler = Callable[[HttpRequest], "TakeOver | HttpResponse | None"]
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload quota (10 MB)
PAYLOAD_TOO_LARGE = f"HTTP content length exceeded {MAX_BODY_BYTES} bytes."  # API Gateway's 413 text
_DRAIN_LIMIT_BYTES = 64 * 1024 * 1024  # read and discard an oversized body up to this, so the 413 is seen
_DIGITS = re.compile(rb"[0-9]+")
_HEX = re.compile(rb"[0-9A-Fa-f]+")
_MAX_LINE = 65536


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...

    def readline(self, size: int = -1, /) -> bytes: ...


class FramingError(Exception):
    """The request's body cannot be read as framed: answer ``status`` and close the connection."""

    def __init__(self, status: int, text: str, drain: int = 0) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.drain = drain


def read_body(headers: Message, stream: _Readable, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body framed by ``headers``, read from ``stream``; FramingError when it can't be."""
    length = body_framing(headers)
    if length is None:
        return _read_chunked(stream, limit)
    if length > limit:
        raise FramingError(413, PAYLOAD_TOO_LARGE, drain=length)
    body = stream.read(length) if length else b""
    if len(body) != length:
        raise FramingError(400, "the body is shorter than its Content-Length")
    return body


def body_framing(headers: Message) -> int | None:
    """How the request body is framed: its ``Content-Length`` (0: none), or ``None`` for chunked.

    Raises :class:`FramingError` for a framing that cannot be trusted (as :func:`read_body`).
    """
    encodings = headers.get_all("Transfer-Encoding") or []
    lengths = headers.get_all("Content-Length") or []
    if encodings:
        if lengths:
            raise FramingError(400, "both Content-Length and Transfer-Encoding")
        codings = [c.strip().lower() for value in encodings for c in value.split(",") if c.strip()]
        if codings != ["chunked"]:
            raise FramingError(501, "only the chunked transfer coding is implemented")
        return None
    if not lengths:
        return 0
    values = {part.strip().encode("latin-1", "replace") for value in lengths for part in value.split(",")}
    if len(values) != 1 or not _DIGITS.fullmatch(next(iter(values))):
        raise FramingError(400, "malformed Content-Length")
    return int(next(iter(values)))


def copy_body(length: int | None, stream: _Readable, send: Callable[[bytes], object]) -> None:
    """Pass the request body on as it arrives, in its own framing, and not one byte past its end.

    ``length`` from :func:`body_framing`; a chunked body is copied chunk by chunk with its framing
    (a malformed one raises :class:`FramingError` and stops the copy). No size limit: a proxy
    streams (CloudFront sets none on a custom origin's request body).
    """
    if length is not None:
        while length > 0:
            data = stream.read(min(length, 1 << 16))
            if not data:
                raise FramingError(400, "the body is shorter than its Content-Length")
            send(data)
            length -= len(data)
        return
    while True:
        line = stream.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE or not line.endswith(b"\r\n"):
            raise FramingError(400, "malformed chunk size line")
        size_text = line[:-2].split(b";", 1)[0].strip()
        if not _HEX.fullmatch(size_text):
            raise FramingError(400, "malformed chunk size")
        send(line)
        size = int(size_text, 16)
        if size == 0:
            break
        left = size + 2
        while left > 0:
            data = stream.read(min(left, 1 << 16))
            if not data:
                raise FramingError(400, "malformed chunk")
            send(data)
            left -= len(data)
    for _ in range(100):
        line = stream.readline(_MAX_LINE + 1)
        if not line.endswith(b"\r\n") or len(line) > _MAX_LINE:
            break
        send(line)
        if line == b"\r\n":
            return
    raise FramingError(400, "malformed chunked trailer")


def _read_chunked(stream: _Readable, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        line = stream.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE or not line.endswith(b"\r\n"):
            raise FramingError(400, "malformed chunk size line")
        size_text = line[:-2].split(b";", 1)[0].strip()
        if not _HEX.fullmatch(size_text):
            raise FramingError(400, "malformed chunk size")
        size = int(size_text, 16)
        if size == 0:
            break
        total += size
        if total > _DRAIN_LIMIT_BYTES:
            raise FramingError(413, PAYLOAD_TOO_LARGE)
        data = stream.read(size)
        if len(data) != size or stream.read(2) != b"\r\n":
            raise FramingError(400, "malformed chunk")
        if total <= limit:  # past the limit: read on (so the client sees the 413), keep nothing
            chunks.append(data)
    for _ in range(100):  # trailer fields, ignored; ends with an empty line
        line = stream.readline(_MAX_LINE + 1)
        if line == b"\r\n":
            if total > limit:
                raise FramingError(413, PAYLOAD_TOO_LARGE)
            return b"".join(chunks)
        if not line.endswith(b"\r\n") or len(line) > _MAX_LINE:
            break
    raise FramingError(400, "malformed chunked trailer")


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default listen backlog is 5: a burst of concurrent clients (twenty mints at
    # once) would see connections reset, which API Gateway never does.
    request_queue_size = 128

    """Binds at construction (so the port is known and a busy port fails early); serves from ``start``."""

    def __init__(
        self,
        port: int,
        label: str,
        log: TextIO | None = None,
        host: str = "127.0.0.1",
        log_connections: bool = False,
    ) -> None:
        self.label = label
        self.log_connections = log_connections
        self.log: TextIO = log or sys.stderr
        self._respond: Responder | None = None
        self._on_head: HeadHandler | None = None
        self._thread: threading.Thread | None = None
        super().__init__((host, port), _RequestHandler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def process_request(self, request: Any, client_address: Any) -> None:
        """With ``log_connections``: one line per accepted TCP connection, before a byte is read."""
        if self.log_connections:
            write_log_line(self.log, f"[{self.label}] connection accepted")
        super().process_request(request, client_address)

    def respond(self, request: HttpRequest) -> HttpResponse | StreamRelay:
        if self._respond is None:
            return HttpResponse.text(503, "starting")
        return self._respond(request)

    def on_head(self, request: HttpRequest) -> TakeOver | HttpResponse | None:
        return None if self._on_head is None else self._on_head(request)

    def start(self, respond: Responder, on_head: HeadHandler | None = None) -> LoopbackServer:
        self._respond = respond
        self._on_head = on_head
        self._thread = threading.Thread(target=self.serve_forever, name=f"{self.label}-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=5)
        self.server_close()


def write_log_line(stream: TextIO, line: str) -> None:
    """``line`` and its newline in one write, then flushed. ``print`` writes them apart, and another
    thread's line (the ingress's, on the same stderr) could land between them: two lines on one."""
    stream.write(line + "\n")
    stream.flush()


class _RequestHandler(BaseHTTPRequestHandler):
    server: LoopbackServer
    protocol_version = "HTTP/1.1"
    server_version = "preview-local"
    sys_version = ""

    def _serve(self) -> None:
        started = time.monotonic()
        path, _, query = self.path.partition("?")
        request = HttpRequest(
            method=self.command,
            path=path or "/",
            query=query,
            headers=tuple(self.headers.items()),
            client_ip=self.client_address[0],
        )
        try:
            early = self.server.on_head(request)
        except Exception as error:  # a bug in the local stack: say so, keep serving
            write_log_line(self.server.log, f"[{self.server.label}] error {type(error).__name__}")
            early = HttpResponse.text(500, "local stack error: see its output")
        if early is not None and not isinstance(early, HttpResponse):
            self.close_connection = True
            try:
                length = body_framing(self.headers)
            except FramingError as error:
                self._write(HttpResponse.text(error.status, error.text), head=False)
                self._log(request, str(error.status), started)
                return
            ended = early.run(self.connection, self.rfile, length)
            self._log(
                request, f"{ended}" + (f" {log_field(early.log_reason)}" if early.log_reason else ""), started
            )
            return
        if isinstance(early, HttpResponse):
            self.close_connection = True
            self._write(early, head=self.command == "HEAD")
            self._log(request, str(early.status), started)
            return
        try:
            request = dataclasses.replace(request, body=read_body(self.headers, self.rfile))
        except FramingError as error:
            if error.drain <= _DRAIN_LIMIT_BYTES:
                _discard(self.rfile, error.drain)
            self.close_connection = True
            response: HttpResponse | StreamRelay = HttpResponse.text(error.status, error.text)
        else:
            try:
                response = self.server.respond(request)
            except Exception as error:  # a bug in the local stack: say so, keep serving
                write_log_line(self.server.log, f"[{self.server.label}] error {type(error).__name__}")
                response = HttpResponse.text(500, "local stack error: see its output")
        if isinstance(response, StreamRelay):
            self._log(request, "stream opened", started)
            self.close_connection = True
            ended = response.run(self.connection)
            self._log(request, f"stream ended: {ended}", started)
            return
        self._write(response, head=self.command == "HEAD")
        outcome = str(response.status)
        if response.log_reason:
            outcome += f" {log_field(response.log_reason)}"
        self._log(request, outcome, started)

    def _log(self, request: HttpRequest, outcome: str, started: float) -> None:
        elapsed = (time.monotonic() - started) * 1000
        write_log_line(
            self.server.log,
            f"[{self.server.label}] {log_field(request.method)} {log_field(request.host)} "
            f"{request.log_target()} -> {outcome} ({elapsed:.0f} ms)",
        )

    def _write(self, response: HttpResponse, head: bool) -> None:
        self.send_response_only(response.status)
        for name, value in response.headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head:
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve  # noqa: N815 - http.server

    def log_message(self, format: str, *args: object) -> None:
        """Silence the default log line (it prints the whole request target, ``mt`` included)."""


def _discard(stream: _Readable, length: int) -> None:
    while length > 0:
        chunk = stream.read(min(length, 1 << 20))
        if not chunk:
            return
        length -= len(chunk)
