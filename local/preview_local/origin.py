"""The demo sandbox app: what ``sbx-demo`` (and the other seeded sandboxes) run behind the fleet ingress.

It is an app like any other (``PREVIEW_LOCAL_APPS``): it verifies nothing, since the fleet ingress
(``preview_ingress``) in front of it admits only CloudFront's requests with a valid origin
assertion, applies the scope, follows revocations and closes streams at ``exp``. It learns which
sandbox it is serving from ``X-Forwarded-Host`` (the preview host the ingress received; the
ingress sets ``Host`` to the app's own address). It serves each sandbox a small app: a page
showing the sandbox, a stylesheet, a script and an XHR that each mark themselves loaded (so the
session cookie works for subresources), and a text box whose keystrokes are POSTed to the input
channel and echoed back.

A hostile page, :data:`HOSTILE_PAGE`, plays a sandbox app that attacks the data plane from the
app's side: its response sets the data plane's own cookies (``__Host-mp_session`` and
``__Host-mp_session_ends``) and forbids every framing (``frame-ancestors 'none'``,
``X-Frame-Options: DENY``); ``/hostile?status=404`` does it on a 404. The ingress must undo all of it,
whatever the status.

For the tests it also records, per sandbox, whether a request ever carried a preview credential
(a token-shaped value anywhere, a non-empty ``mt``, any ``__Host-mp_*`` cookie, the ingress
secret or the assertion): it never must. ``/api/request`` (and any path below it) answers what this very
request brought (its raw path; cookie, query and header names), for the tests to check what
reached the app on each path.

Streams: the desktop sandbox's ``/websockify`` is relayed to the RFB bridge (view-only x11vnc
unless the request says ``X-Preview-Scope: interact``); every sandbox has an input stream at
``<InputPathPrefix>/stream`` that reads and drops what it is sent.
"""

from __future__ import annotations

import html
import json
import mimetypes
import re
import socket
import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template

from preview_tokens.data_plane.access import (
    FALLBACK_TOKEN_HEADER,
    ORIGIN_FALLBACK_TOKEN_VALUE,
    PREVIEW_COOKIE_PREFIX,
    SESSION_COOKIE,
    SESSION_ENDS_COOKIE,
    TOKEN_PARAMETER,
    normalize_host,
)
from preview_tokens.keys.tokens import Scope

from preview_local.desktop import NOVNC_DIR, DesktopSandbox
from preview_local.http_messages import HttpRequest, HttpResponse
from preview_local.rfb_view import ViewOnlyDesktop
from preview_local.streams import StreamRelay, accept_key, is_websocket_upgrade, request_head, text_frame

FORWARDED_HOST_HEADER = "X-Forwarded-Host"
SCOPE_HEADER = "X-Preview-Scope"
# What only CloudFront and the ingress may hold: never an app's to see.
CREDENTIAL_HEADERS = ("X-Preview-Assertion", "X-Preview-Token-Id", "X-Preview-Ingress-Secret")
APP_COOKIE = "sandbox_theme"
HOSTILE_PAGE = "/hostile"
FORGED_SESSION = "forged-by-the-origin"
_TOKEN_SHAPED = re.compile(r"mp_[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.")
_STATIC = {
    "/static/sandbox.css": "text/css; charset=utf-8",
    "/static/sandbox.js": "text/javascript; charset=utf-8",
    "/static/desktop.js": "text/javascript; charset=utf-8",
}
DESKTOP_STREAM_PATH = "/websockify"
# A response that streams: its first part at once, its second when released (tests: no buffering).
SLOW_PATH = "/api/slow"
SLOW_RELEASE_TIMEOUT_SECONDS = 20.0
NOVNC_PREFIX = "/novnc/"


def sandbox_of(request: HttpRequest) -> str:
    """The sandbox this request is for: the first label of the preview host the ingress received."""
    host = request.header(FORWARDED_HOST_HEADER) or request.host
    return normalize_host(host).split(".", 1)[0]


def static_text(name: str) -> str:
    return resources.files("preview_local").joinpath("static", name).read_text(encoding="utf-8")


@dataclass
class SandboxObservations:
    """What one sandbox's app has received."""

    inputs: list[str] = field(default_factory=list)
    page_loads: int = 0
    credential_seen: bool = False
    cookie_names: set[str] = field(default_factory=set)
    streams_opened: list[str] = field(default_factory=list)

    def as_json(self, sandbox_id: str, scope: str) -> dict[str, object]:
        return {
            "sandbox_id": sandbox_id,
            "scope": scope,
            "page_loads": self.page_loads,
            "inputs": self.inputs,
            "credential_seen": self.credential_seen,
            "cookie_names": sorted(self.cookie_names),
            "streams_opened": self.streams_opened,
        }


class SandboxOrigin:
    def __init__(
        self,
        input_path_prefix: str,
        desktop: DesktopSandbox | None = None,
        desktop_sandbox_id: str | None = None,
    ) -> None:
        self._input_path = input_path_prefix.rstrip("/") + "/keys"
        self._input_stream_path = input_path_prefix.rstrip("/") + "/stream"
        self._observations: dict[str, SandboxObservations] = {}
        self._lock = threading.Lock()
        self._page = Template(static_text("sandbox.html"))
        self._desktop_page = Template(static_text("desktop.html"))
        self._desktop = desktop
        self._desktop_sandbox_id = desktop_sandbox_id
        self._slow_releases: dict[str, threading.Event] = {}

    def observations(self, sandbox_id: str) -> SandboxObservations:
        with self._lock:
            return self._observations.setdefault(sandbox_id, SandboxObservations())

    def respond(self, request: HttpRequest) -> HttpResponse | StreamRelay:
        sandbox_id = sandbox_of(request)
        scope = request.header(SCOPE_HEADER) or ""
        seen = self._record(sandbox_id, request)
        if request.path == "/api/request" or request.path.startswith("/api/request/"):
            return HttpResponse.json(200, _what_arrived(request))
        if is_websocket_upgrade(request):
            return self._stream(request, seen, sandbox_id, scope)
        desktop = self._desktop if sandbox_id == self._desktop_sandbox_id else None
        if desktop is not None and request.method == "GET" and request.path.startswith(NOVNC_PREFIX):
            return _novnc_file(request.path.removeprefix(NOVNC_PREFIX))
        if desktop is not None and request.method == "GET" and request.path == "/api/desktop":
            return HttpResponse.json(200, desktop.received())
        if request.method in ("GET", "HEAD") and request.path in ("/", "/index.html"):
            with self._lock:
                seen.page_loads += 1
            if desktop is not None:
                return self._page_response(sandbox_id, scope, self._desktop_page)
            return self._page_response(sandbox_id, scope)
        if request.method in ("GET", "HEAD") and request.path in _STATIC:
            return HttpResponse.text(200, static_text(request.path.rsplit("/", 1)[1]), _STATIC[request.path])
        if request.method == "GET" and request.path == HOSTILE_PAGE:
            status = dict(request.query_items()).get("status", "200")
            return self._hostile_response(int(status) if status in ("200", "404", "500") else 200)
        if request.method == "GET" and request.path == SLOW_PATH:
            return self._slow(dict(request.query_items()).get("id", ""))
        if request.method == "GET" and request.path == SLOW_PATH + "/release":
            with self._lock:
                release = self._slow_releases.pop(dict(request.query_items()).get("id", ""), None)
            if release is not None:
                release.set()
            return HttpResponse.text(200 if release else 404, "released\n" if release else "no such stream\n")
        if request.method == "GET" and request.path == "/api/status":
            return HttpResponse.json(200, seen.as_json(sandbox_id, scope))
        if request.method == "POST" and request.path == self._input_path:
            return self._receive_input(sandbox_id, scope, request)
        return HttpResponse.text(404, "no such page in this sandbox")

    def _slow(self, stream_id: str) -> StreamRelay:
        """A response in two parts: ``first`` now, ``second`` once ``/api/slow/release?id=`` is asked."""
        release = threading.Event()
        with self._lock:
            self._slow_releases[stream_id] = release
        ours, theirs = socket.socketpair()

        def finish() -> None:
            with theirs:
                release.wait(SLOW_RELEASE_TIMEOUT_SECONDS)
                theirs.sendall(_chunk(b"second\n") + b"0\r\n\r\n")

        threading.Thread(target=finish, name="slow-response", daemon=True).start()
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        return StreamRelay(connect=lambda: ours, greeting=head + _chunk(b"first\n"))

    def _record(self, sandbox_id: str, request: HttpRequest) -> SandboxObservations:
        cookie_names = {
            crumb.split("=", 1)[0].strip()
            for crumb in (request.header("Cookie") or "").split(";")
            if crumb.strip()
        }
        in_query = any(name == TOKEN_PARAMETER for name, _ in request.query_items())
        in_header = request.header(FALLBACK_TOKEN_HEADER) not in (None, ORIGIN_FALLBACK_TOKEN_VALUE) or any(
            request.header(name) is not None for name in CREDENTIAL_HEADERS
        )
        carries_token = (
            in_query
            or in_header
            or any(name.lower().startswith(PREVIEW_COOKIE_PREFIX.lower()) for name in cookie_names)
            or _TOKEN_SHAPED.search(request.query) is not None
            or any(_TOKEN_SHAPED.search(value) for _, value in request.headers)
        )
        with self._lock:
            seen = self._observations.setdefault(sandbox_id, SandboxObservations())
            seen.cookie_names |= cookie_names
            seen.credential_seen |= carries_token
            return seen

    def _stream(
        self, request: HttpRequest, seen: SandboxObservations, sandbox_id: str, scope: str
    ) -> HttpResponse | StreamRelay:
        desktop = self._desktop if sandbox_id == self._desktop_sandbox_id else None
        if request.path == DESKTOP_STREAM_PATH and desktop is not None:
            # Server-side view-only unless the ingress says the session may interact.
            granted = Scope.INTERACT if scope == Scope.INTERACT.value else Scope.READ
            with self._lock:
                seen.streams_opened.append(f"desktop:{granted.value}")
            if granted is Scope.READ:  # the viewer's frames never arrive: the app plays the RFB client
                return ViewOnlyDesktop(
                    connect=_no_upstream, request=request, rfb_port=desktop.rfb_ports[granted]
                )
            bridge = desktop.bridge_ports[granted]
            return StreamRelay(connect=lambda: _open_upstream(bridge, request))
        if request.path == self._input_stream_path:
            with self._lock:
                seen.streams_opened.append(f"input:{scope or 'unknown'}")
            answer = (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept_key(request.header('Sec-WebSocket-Key') or '')}\r\n\r\n"
            ).encode("latin-1")
            return StreamRelay(
                connect=_input_stream_sink,
                greeting=answer + text_frame(f"input stream of {sandbox_id} ({scope or 'unknown'})"),
            )
        return HttpResponse.text(404, "no such stream in this sandbox")

    def _page_response(
        self, sandbox_id: str, scope: str, page_template: Template | None = None
    ) -> HttpResponse:
        page = (page_template or self._page).substitute(
            sandbox_id=html.escape(sandbox_id),
            scope=html.escape(scope or "unknown"),
            input_url=html.escape(self._input_path),
        )
        return HttpResponse(
            200,
            (
                ("Content-Type", "text/html; charset=utf-8"),
                ("Cache-Control", "no-store"),
                ("Set-Cookie", f"{APP_COOKIE}=light; Path=/; Secure; SameSite=None; Partitioned"),
            ),
            page.encode("utf-8"),
        )

    def _hostile_response(self, status: int = 200) -> HttpResponse:
        attributes = "Path=/; Max-Age=86400; Secure; HttpOnly; SameSite=None; Partitioned"
        page = (
            "<!doctype html><title>Hostile sandbox page</title>"
            '<h1 id="hostile">This page tried to replace the preview session</h1>'
        )
        return HttpResponse(
            status,
            (
                ("Content-Type", "text/html; charset=utf-8"),
                ("Cache-Control", "no-store"),
                ("Set-Cookie", f"{SESSION_COOKIE}={FORGED_SESSION}; {attributes}"),
                ("Set-Cookie", f"{SESSION_ENDS_COOKIE}=1; {attributes}"),
                ("Set-Cookie", f"{APP_COOKIE}=dark; Path=/; Secure; SameSite=None; Partitioned"),
                ("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'"),
                ("X-Frame-Options", "DENY"),
            ),
            page.encode("utf-8"),
        )

    def _receive_input(self, sandbox_id: str, scope: str, request: HttpRequest) -> HttpResponse:
        try:
            document = json.loads(request.body or b"{}")
        except ValueError:
            document = None
        key = document.get("key") if isinstance(document, dict) else None
        if not isinstance(key, str) or not 1 <= len(key) <= 8:
            return HttpResponse.json(400, {"error": 'send {"key": "<one key>"}'})
        with self._lock:
            seen = self._observations.setdefault(sandbox_id, SandboxObservations())
            seen.inputs.append(key)
        return HttpResponse.json(200, seen.as_json(sandbox_id, scope))


def _what_arrived(request: HttpRequest) -> dict[str, object]:
    """What this request brought to the origin: names only, never values."""
    return {
        "method": request.method,
        "path": request.path,  # the request target's path exactly as it arrived (never decoded)
        "cookie_names": [
            crumb.split("=", 1)[0].strip()
            for crumb in (request.header("Cookie") or "").split(";")
            if crumb.strip()
        ],
        "query_names": [name for name, _ in request.query_items()],
        "header_names": sorted({name.lower() for name, _ in request.headers}),
    }


def _open_upstream(port: int, request: HttpRequest) -> socket.socket:
    """A connection to a local bridge, the client's handshake already sent on it."""
    upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
    upstream.settimeout(None)
    headers = [(name, value) for name, value in request.headers if name.lower() != "host"]
    upstream.sendall(request_head(request.method, request.path, [("Host", f"127.0.0.1:{port}"), *headers]))
    return upstream


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _no_upstream() -> socket.socket:
    raise OSError("the view-only desktop connects by itself")


def _input_stream_sink() -> socket.socket:
    """The input stream's far end: whatever the viewer sends is read and dropped."""
    ours, theirs = socket.socketpair()

    def drain() -> None:
        with theirs:
            while theirs.recv(65536):
                pass

    threading.Thread(target=drain, name="input-stream", daemon=True).start()
    return ours


def _novnc_file(relative: str) -> HttpResponse:
    """A file of Debian's noVNC client (the desktop sandbox's page loads it as ES modules)."""
    root = NOVNC_DIR.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return HttpResponse.text(404, "no such noVNC file")
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if path.suffix == ".js":
        content_type = "text/javascript; charset=utf-8"
    return HttpResponse(
        200, (("Content-Type", content_type), ("Cache-Control", "no-store")), Path(path).read_bytes()
    )
