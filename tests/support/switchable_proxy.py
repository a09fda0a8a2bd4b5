"""A TCP proxy on loopback that can forward, refuse connections, or stall them (never answer)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class SwitchableProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target``; ``refuse()`` closes the port, ``stall()`` holds
    connections without a byte of answer, ``forward()`` restores service on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._mode = "forward"
        self._listener: socket.socket | None = None
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self.port = 0
        self._open()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def forward(self) -> None:
        self._mode = "forward"
        self._release_held()
        if self._listener is None:
            self._open()

    def stall(self) -> None:
        self._mode = "stall"
        if self._listener is None:
            self._open()

    def refuse(self) -> None:
        """Nothing listens on the port any more: connections are refused."""
        self._mode = "refuse"
        self._release_held()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()

    def close(self) -> None:
        self.refuse()

    def _open(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self._mode == "stall":
                with self._lock:
                    self._held.append(client)
                continue
            threading.Thread(target=self._pipe_both, args=(client,), daemon=True).start()

    def _pipe_both(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self._target, timeout=10)
        except OSError:
            client.close()
            return
        threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
        _pipe(client, upstream)

    def _release_held(self) -> None:
        with self._lock:
            held, self._held = self._held, []
        for connection in held:
            connection.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()


@contextmanager
def switchable_proxy(target_url: str) -> Iterator[SwitchableProxy]:
    host, _, port = target_url.removeprefix("http://").partition(":")
    proxy = SwitchableProxy(host, int(port))
    try:
        yield proxy
    finally:
        proxy.close()
