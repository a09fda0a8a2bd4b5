"""A TCP endpoint that accepts connections and never answers: a stalled DynamoDB, KMS or JWKS host.

``heal(target)`` turns it into a plain relay to ``target`` (the moto server), so a test can show
a client recovering by itself once its dependency answers again. ``connections`` counts every
connection accepted, which is how tests see retries and back-off without timing anything.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from urllib.parse import urlsplit


class StalledEndpoint:
    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._target: tuple[str, int] | None = None
        self._closed = False
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, name="stalled-endpoint", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def heal(self, target_url: str) -> None:
        """From now on, relay every new connection to ``target_url``."""
        parts = urlsplit(target_url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 80)

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._open.append(connection)
                target = self._target
            if target is not None:
                threading.Thread(target=self._relay, args=(connection, target), daemon=True).start()

    def _relay(self, client: socket.socket, target: tuple[str, int]) -> None:
        upstream = socket.create_connection(target)
        with self._lock:
            self._open.append(upstream)

        def pipe(source: socket.socket, sink: socket.socket) -> None:
            with suppress(OSError):
                while chunk := source.recv(65536):
                    sink.sendall(chunk)
            with suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        pipe(client, upstream)

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for connection in self._open:
                connection.close()
        self._thread.join(timeout=5)


@contextmanager
def stalled_endpoint() -> Iterator[StalledEndpoint]:
    endpoint = StalledEndpoint()
    try:
        yield endpoint
    finally:
        endpoint.close()
