"""A sandbox app that streams, Python standard library only: server-sent events, a 100 MB download
and a 20 MB upload, each checked by its bytes.

    python3 tests/apps/streams_app.py --port 8090

- ``GET /`` a page that opens ``/events`` (EventSource), downloads ``/download`` and uploads to
  ``/upload`` with ``fetch``, and shows what arrived with its SHA-256.
- ``GET /events`` sends ``EVENTS - 1`` events one by one, ``GAP_SECONDS`` apart, then holds the last
  one until someone calls ``POST /release`` on the app itself (on its own port, not through a preview):
  a test sees the first event arrive while the last is not sent yet, without timing anything.
- ``GET /download`` ``DOWNLOAD_BYTES`` deterministic bytes (``pattern``), streamed in 1 MiB writes.
- ``POST /upload`` reads the body as it comes and answers its length and SHA-256.
- ``GET /status`` what the app did: events sent, uploads received (for the tests, on loopback).
- ``GET /`` also sets a session cookie as web frameworks do by default (``SameSite=Lax``, host-only,
  ``HttpOnly``), and ``GET /whoami`` answers the names of the cookies it got: whether the browser
  kept the app's session in the frame.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import random
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

EVENTS = 5
SESSION_COOKIE = "app_session"
GAP_SECONDS = 0.2
DOWNLOAD_BYTES = 100 * 1024 * 1024
UPLOAD_LIMIT_BYTES = 64 * 1024 * 1024
BLOCK_BYTES = 1024 * 1024
_BLOCKS = 16  # distinct 1 MiB blocks, repeated: deterministic, not trivially compressible


def _blocks() -> list[bytes]:
    generator = random.Random(20261207)
    return [generator.randbytes(BLOCK_BYTES) for _ in range(_BLOCKS)]


BLOCKS = _blocks()


def pattern(size: int) -> bytes:
    """The first ``size`` bytes of the download (block i is ``BLOCKS[i % 16]``)."""
    whole, rest = divmod(size, BLOCK_BYTES)
    return b"".join(BLOCKS[i % _BLOCKS] for i in range(whole)) + BLOCKS[whole % _BLOCKS][:rest]


def pattern_sha256(size: int) -> str:
    digest = hashlib.sha256()
    whole, rest = divmod(size, BLOCK_BYTES)
    for i in range(whole):
        digest.update(BLOCKS[i % _BLOCKS])
    digest.update(BLOCKS[whole % _BLOCKS][:rest])
    return digest.hexdigest()


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Streams sandbox</title>
<style>body{font:15px system-ui,sans-serif;margin:1.2em} li{margin:.2em 0} code{font-size:13px}</style>
</head><body>
<h1>Streams sandbox</h1>
<h2>Server-sent events</h2>
<ol id="events" data-count="0"></ol>
<h2>Download</h2>
<p><button id="download">Download 100 MB</button> <span id="download-result" data-state="idle"></span></p>
<h2>Upload</h2>
<p><button id="upload">Upload 20 MB</button> <span id="upload-result" data-state="idle"></span></p>
<script>
const hex = (buffer) => [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, '0')).join('');
const list = document.getElementById('events');
const source = new EventSource('/events');
source.addEventListener('tick', (event) => {
  const item = document.createElement('li');
  item.textContent = event.data;
  list.appendChild(item);
  list.dataset.count = String(list.children.length);
  if (event.data.endsWith('last')) source.close();
});
document.getElementById('download').onclick = async () => {
  const result = document.getElementById('download-result');
  result.dataset.state = 'running';
  const response = await fetch('/download', {cache: 'no-store'});
  const body = await response.arrayBuffer();
  result.dataset.bytes = String(body.byteLength);
  result.dataset.sha256 = hex(await crypto.subtle.digest('SHA-256', body));
  result.textContent = `${response.status}: ${body.byteLength} bytes, sha256 ${result.dataset.sha256}`;
  result.dataset.state = 'done';
};
document.getElementById('upload').onclick = async () => {
  const result = document.getElementById('upload-result');
  result.dataset.state = 'running';
  const size = Number(document.getElementById('upload').dataset.bytes || 20 * 1024 * 1024);
  const body = new Uint8Array(size);
  let x = 12345;
  for (let i = 0; i < size; i++) { x = (x * 1103515245 + 12345) >>> 0; body[i] = x >>> 24; }
  result.dataset.sent = hex(await crypto.subtle.digest('SHA-256', body));
  const response = await fetch('/upload', {method: 'POST', body: body});
  result.dataset.status = String(response.status);
  if (response.ok) {
    const got = await response.json();
    result.dataset.bytes = String(got.bytes);
    result.dataset.sha256 = got.sha256;
  }
  result.textContent = `${response.status}: sent sha256 ${result.dataset.sent}, ` +
    `the app got ${result.dataset.bytes || 0} bytes, sha256 ${result.dataset.sha256 || '-'}`;
  result.dataset.state = 'done';
};
</script>
</body></html>
"""


class AppState:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.events_sent = 0
        self.uploads: list[dict[str, Any]] = []

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"events_sent": self.events_sent, "uploads": list(self.uploads)}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StreamsServer

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/":
            session = f"{SESSION_COOKIE}={random.randbytes(8).hex()}; Path=/; HttpOnly; SameSite=Lax"
            self._reply(200, PAGE.encode(), "text/html; charset=utf-8", (("Set-Cookie", session),))
        elif path == "/whoami":
            names = sorted(
                crumb.split("=", 1)[0].strip()
                for crumb in (self.headers.get("Cookie") or "").split(";")
                if crumb.strip()
            )
            self._reply(200, json.dumps({"cookies": names}).encode(), "application/json")
        elif path == "/status":
            self._reply(200, json.dumps(self.server.state.snapshot()).encode(), "application/json")
        elif path == "/events":
            self._events()
        elif path == "/download":
            self._download()
        else:
            self._reply(404, b"not found\n", "text/plain")

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/upload":
            self._upload()
        elif path == "/release":
            self.server.state.release.set()
            self._reply(200, b"released\n", "text/plain")
        else:
            self._reply(404, b"not found\n", "text/plain")

    def _events(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        state = self.server.state
        for number in range(1, EVENTS + 1):
            if number == EVENTS:
                state.release.wait()
            elif number > 1:
                state.release.wait(GAP_SECONDS)  # a gap between events (none once released)
            label = f"event {number} of {EVENTS}" + (" last" if number == EVENTS else "")
            try:
                self.wfile.write(f"event: tick\ndata: {label}\n\n".encode())
                self.wfile.flush()
            except OSError:
                return
            with state.lock:
                state.events_sent = number

    def _download(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(DOWNLOAD_BYTES))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        whole, rest = divmod(DOWNLOAD_BYTES, BLOCK_BYTES)
        try:
            for i in range(whole):
                self.wfile.write(BLOCKS[i % _BLOCKS])
            self.wfile.write(BLOCKS[whole % _BLOCKS][:rest])
        except OSError:
            self.close_connection = True

    def _upload(self) -> None:
        digest, received = hashlib.sha256(), 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = self._chunks()
        else:
            length = int(self.headers.get("Content-Length") or 0)
            if length > UPLOAD_LIMIT_BYTES:
                self._reply(413, b"too large\n", "text/plain")
                self.close_connection = True
                return
            chunks = self._fixed(length)
        for chunk in chunks:
            digest.update(chunk)
            received += len(chunk)
        result = {"bytes": received, "sha256": digest.hexdigest()}
        with self.server.state.lock:
            self.server.state.uploads.append(result)
        self._reply(200, json.dumps(result).encode(), "application/json")

    def _fixed(self, length: int) -> Any:
        while length > 0:
            chunk = self.rfile.read(min(length, 256 * 1024))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk

    def _chunks(self) -> Any:
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return
            yield self.rfile.read(size)
            self.rfile.readline()

    def _reply(
        self, status: int, body: bytes, content_type: str, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write("[streams-app] " + (format % args) + "\n")


class StreamsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, Handler)
        self.state = AppState()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args(argv)
    server = StreamsServer((args.host, args.port))
    print(f"streams app on http://{args.host}:{server.server_address[1]}/", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
