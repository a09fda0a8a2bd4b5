"""A demo sandbox fleet ingress: the origin the data plane forwards allowed requests to.

It routes on ``X-Sandbox-Id`` (set by API Gateway from the authorizer's context; a request
without it did not come through the gateway and is refused) and serves each sandbox a small app:
a page showing the sandbox and the ``X-Preview-Scope`` it is viewed with, a stylesheet, a script
and an XHR that each mark themselves loaded (so the session cookie works for subresources),
and a text box whose keystrokes are POSTed to the input channel and echoed back.

A hostile page, :data:`HOSTILE_PAGE`, plays a sandbox app that attacks the data plane from the
origin's side: its response sets the data plane's own cookies (``__Host-mp_session`` and
``__Host-mp_session_ends``) and forbids every framing (``frame-ancestors 'none'``,
``X-Frame-Options: DENY``). The edge's viewer-response rule must undo all of it.

For the tests it also records, per sandbox, whether a request ever carried a preview
credential - an ``mt`` query parameter (its name decoded, any value), the session cookie, or
an ``X-Preview-Token`` other than the fixed value the gateway maps there: it never must.
"""

from __future__ import annotations

import html
import json
import threading
from dataclasses import dataclass, field
from importlib import resources
from string import Template

from preview_tokens.access import (
    FALLBACK_TOKEN_HEADER,
    ORIGIN_FALLBACK_TOKEN_VALUE,
    SESSION_COOKIE,
    SESSION_ENDS_COOKIE,
    TOKEN_PARAMETER,
)
from preview_tokens.sandboxes import is_sandbox_id

from preview_local.http_messages import HttpRequest, HttpResponse

SANDBOX_HEADER = "X-Sandbox-Id"
SCOPE_HEADER = "X-Preview-Scope"
APP_COOKIE = "sandbox_theme"
HOSTILE_PAGE = "/hostile"
FORGED_SESSION = "forged-by-the-origin"
_STATIC = {
    "/static/sandbox.css": "text/css; charset=utf-8",
    "/static/sandbox.js": "text/javascript; charset=utf-8",
}


def static_text(name: str) -> str:
    return resources.files("preview_local").joinpath("static", name).read_text(encoding="utf-8")


@dataclass
class SandboxObservations:
    """What one sandbox's app has received."""

    inputs: list[str] = field(default_factory=list)
    page_loads: int = 0
    credential_seen: bool = False
    cookie_names: set[str] = field(default_factory=set)

    def as_json(self, sandbox_id: str, scope: str) -> dict[str, object]:
        return {
            "sandbox_id": sandbox_id,
            "scope": scope,
            "page_loads": self.page_loads,
            "inputs": self.inputs,
            "credential_seen": self.credential_seen,
            "cookie_names": sorted(self.cookie_names),
        }


class SandboxOrigin:
    def __init__(self, input_path_prefix: str) -> None:
        self._input_path = input_path_prefix.rstrip("/") + "/keys"
        self._observations: dict[str, SandboxObservations] = {}
        self._lock = threading.Lock()
        self._page = Template(static_text("sandbox.html"))

    def observations(self, sandbox_id: str) -> SandboxObservations:
        with self._lock:
            return self._observations.setdefault(sandbox_id, SandboxObservations())

    def respond(self, request: HttpRequest) -> HttpResponse:
        sandbox_id = request.header(SANDBOX_HEADER) or ""
        if not is_sandbox_id(sandbox_id):
            return HttpResponse.text(400, f"{SANDBOX_HEADER} is missing: requests come through the gateway")
        scope = request.header(SCOPE_HEADER) or ""
        seen = self._record(sandbox_id, request)
        if request.method in ("GET", "HEAD") and request.path in ("/", "/index.html"):
            with self._lock:
                seen.page_loads += 1
            return self._page_response(sandbox_id, scope)
        if request.method in ("GET", "HEAD") and request.path in _STATIC:
            return HttpResponse.text(200, static_text(request.path.rsplit("/", 1)[1]), _STATIC[request.path])
        if request.method == "GET" and request.path == HOSTILE_PAGE:
            return self._hostile_response()
        if request.method == "GET" and request.path == "/api/status":
            return HttpResponse.json(200, seen.as_json(sandbox_id, scope))
        if request.method == "POST" and request.path == self._input_path:
            return self._receive_input(sandbox_id, scope, request)
        return HttpResponse.text(404, "no such page in this sandbox")

    def _record(self, sandbox_id: str, request: HttpRequest) -> SandboxObservations:
        cookie_names = {
            crumb.split("=", 1)[0].strip()
            for crumb in (request.header("Cookie") or "").split(";")
            if crumb.strip()
        }
        in_query = any(name == TOKEN_PARAMETER for name, _ in request.query_items())
        in_header = request.header(FALLBACK_TOKEN_HEADER) not in (None, ORIGIN_FALLBACK_TOKEN_VALUE)
        carries_token = in_query or in_header
        with self._lock:
            seen = self._observations.setdefault(sandbox_id, SandboxObservations())
            seen.cookie_names |= cookie_names
            seen.credential_seen |= carries_token or SESSION_COOKIE in cookie_names
            return seen

    def _page_response(self, sandbox_id: str, scope: str) -> HttpResponse:
        page = self._page.substitute(
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

    def _hostile_response(self) -> HttpResponse:
        attributes = "Path=/; Max-Age=86400; Secure; HttpOnly; SameSite=None; Partitioned"
        page = (
            "<!doctype html><title>Hostile sandbox page</title>"
            '<h1 id="hostile">This page tried to replace the preview session</h1>'
        )
        return HttpResponse(
            200,
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
