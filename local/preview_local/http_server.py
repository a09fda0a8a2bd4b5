"""A threaded loopback HTTP server that hands each request to one function, and logs it safely.

The log line names the server, method, host, path and status. ``mt`` query values are
replaced by ``[redacted]``; headers (``Cookie``, ``Authorization``) and bodies are never logged.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TextIO

from preview_local.http_messages import HttpRequest, HttpResponse

Responder = Callable[[HttpRequest], HttpResponse]
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default listen backlog is 5: a burst of concurrent clients (twenty mints at
    # once) would see connections reset, which API Gateway never does.
    request_queue_size = 128

    """Binds at construction (so the port is known and a busy port fails early); serves from ``start``."""

    def __init__(self, port: int, label: str, log: TextIO | None = None, host: str = "127.0.0.1") -> None:
        self.label = label
        self.log: TextIO = log or sys.stderr
        self._respond: Responder | None = None
        self._thread: threading.Thread | None = None
        super().__init__((host, port), _RequestHandler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def respond(self, request: HttpRequest) -> HttpResponse:
        if self._respond is None:
            return HttpResponse.text(503, "starting")
        return self._respond(request)

    def start(self, respond: Responder) -> LoopbackServer:
        self._respond = respond
        self._thread = threading.Thread(target=self.serve_forever, name=f"{self.label}-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=5)
        self.server_close()


class _RequestHandler(BaseHTTPRequestHandler):
    server: LoopbackServer
    protocol_version = "HTTP/1.1"
    server_version = "preview-local"
    sys_version = ""

    def _serve(self) -> None:
        started = time.monotonic()
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._write(HttpResponse.text(413, "request body too large"), head=False)
            return
        request = HttpRequest(
            method=self.command,
            path=path or "/",
            query=query,
            headers=tuple(self.headers.items()),
            body=self.rfile.read(length) if length else b"",
            client_ip=self.client_address[0],
        )
        try:
            response = self.server.respond(request)
        except Exception as error:  # a bug in the local stack: say so, keep serving
            print(f"[{self.server.label}] error {type(error).__name__}: {error}", file=self.server.log)
            response = HttpResponse.text(500, "local stack error: see its output")
        self._write(response, head=self.command == "HEAD")
        elapsed = (time.monotonic() - started) * 1000
        print(
            f"[{self.server.label}] {request.method} {request.host} {request.log_target()} "
            f"-> {response.status} ({elapsed:.0f} ms)",
            file=self.server.log,
            flush=True,
        )

    def _write(self, response: HttpResponse, head: bool) -> None:
        self.send_response_only(response.status)
        for name, value in response.headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if not head:
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve  # noqa: N815 - http.server

    def log_message(self, format: str, *args: object) -> None:
        """Silence the default log line (it prints the whole request target, ``mt`` included)."""
