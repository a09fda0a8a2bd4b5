"""A small HTTP server on loopback for tests: an app, a page or an endpoint, served from a thread."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def serving(
    handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None
) -> Iterator[ThreadingHTTPServer]:
    """``handler`` on ``127.0.0.1`` (a free port; over TLS with ``tls``) until the block ends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def answer(
    handler: BaseHTTPRequestHandler,
    body: bytes,
    content_type: str,
    *extra: tuple[str, str],
    status: int = 200,
) -> None:
    """Send ``body`` whole, with its ``Content-Type``, ``Content-Length`` and ``extra`` headers."""
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in extra:
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)
