"""The demo third-party frontend: a page that embeds sandbox previews, and its own small backend.

The backend (``POST /demo/api/preview``) mints through the mint API over HTTP with the
tenant's API key, which never reaches the browser: the page receives only the iframe URL,
``expires_at`` and ``scope``, or the mint API's error. The page embeds with the embed helper
(``<sandbox-preview>``, served at ``/embed/preview-embed-<version>.js`` with its SRI hash), lets
you choose the sandbox (another tenant's included, to show the 404), the scope and the TTL, and
logs what the preview posts; the helper re-mints by itself on ``preview.expired``. ``/?sandbox=<id>``
opens it on that sandbox (the banner prints one such link per app).
"""

from __future__ import annotations

import html
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from string import Template
from urllib.parse import quote

from preview_local.embed_script import embed_script
from preview_local.http_messages import HttpRequest, HttpResponse
from preview_local.origin import static_text

PAGE_PATHS = ("/", "/demo", "/demo/")
MINT_PROXY_PATH = "/demo/api/preview"
_STATIC = {
    "/demo/static/demo.css": ("demo.css", "text/css; charset=utf-8"),
    "/demo/static/demo.js": ("demo.js", "text/javascript; charset=utf-8"),
}
MINT_FIELDS = ("scope", "expires_in")


@dataclass(frozen=True)
class SandboxChoice:
    sandbox_id: str
    label: str


@dataclass(frozen=True)
class DemoEmbeddingApp:
    api_url: str
    api_key: str = field(repr=False)
    sandboxes: Sequence[SandboxChoice]
    preview_domain: str
    preview_port: int

    @property
    def preview_origin_suffix(self) -> str:
        """What every preview iframe's origin ends with, e.g. ``.sandboxes.localhost:3000``."""
        return f".{self.preview_domain}:{self.preview_port}"

    def respond(self, request: HttpRequest) -> HttpResponse:
        if request.method == "GET" and request.path in PAGE_PATHS:
            return self._page(dict(request.query_items()).get("sandbox", ""))
        if request.method == "GET" and request.path in _STATIC:
            name, content_type = _STATIC[request.path]
            return HttpResponse.text(200, static_text(name), content_type)
        if request.method == "GET" and request.path == embed_script().path:
            return HttpResponse(
                200,
                (
                    ("Content-Type", "text/javascript; charset=utf-8"),
                    ("Cache-Control", "no-cache"),
                    ("Access-Control-Allow-Origin", "*"),  # a public script, loaded with SRI
                ),
                embed_script().text.encode("utf-8"),
            )
        if request.method == "POST" and request.path == MINT_PROXY_PATH:
            return self._mint(request)
        return HttpResponse.text(404, "not found")

    def _page(self, wanted: str = "") -> HttpResponse:
        """The page; ``?sandbox=<id>`` (one of the choices) is the sandbox it opens with."""
        chosen = next((c.sandbox_id for c in self.sandboxes if c.sandbox_id == wanted), None)
        chosen = chosen or self.sandboxes[0].sandbox_id
        options = "".join(
            f'<option value="{html.escape(choice.sandbox_id)}"'
            + (" selected" if choice.sandbox_id == chosen else "")
            + f">{html.escape(choice.label)}</option>"
            for choice in self.sandboxes
        )
        page = Template(static_text("demo.html")).substitute(
            sandbox_options=options,
            preview_origin_suffix=html.escape(self.preview_origin_suffix),
            default_sandbox=html.escape(chosen),
            embed_script_path=embed_script().path,
            embed_script_integrity=embed_script().integrity,
        )
        policy = (
            "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; "
            f"frame-src http://*{self.preview_origin_suffix}"
        )
        return HttpResponse(
            200,
            (
                ("Content-Type", "text/html; charset=utf-8"),
                ("Cache-Control", "no-store"),
                ("Content-Security-Policy", policy),
            ),
            page.encode("utf-8"),
        )

    def _mint(self, request: HttpRequest) -> HttpResponse:
        """Mint for the page with the tenant's API key; answer with the mint API's status and body."""
        try:
            wanted = request.json_body()
        except ValueError:
            wanted = None
        if not isinstance(wanted, dict) or not isinstance(wanted.get("sandbox_id"), str):
            return HttpResponse.json(
                400, {"error": {"code": "invalid_request", "message": "sandbox_id is required"}}
            )
        body = json.dumps({name: wanted[name] for name in MINT_FIELDS if name in wanted}).encode()
        mint = urllib.request.Request(  # noqa: S310 - the configured http(s) API URL
            f"{self.api_url}/api/v1/sandboxes/{quote(wanted['sandbox_id'], safe='')}/preview-token",
            data=body,
            method="POST",
            headers={"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(mint, timeout=15) as response:  # noqa: S310 - see above
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, payload = error.code, error.read()
        except urllib.error.URLError:
            return HttpResponse.json(
                502, {"error": {"code": "mint_unreachable", "message": "mint API unreachable"}}
            )
        try:
            document = json.loads(payload)
        except ValueError:
            document = {"error": {"code": "bad_response", "message": "the mint API answered something else"}}
        return HttpResponse.json(status, document)
