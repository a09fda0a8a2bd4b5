"""An integrator's backend for <sandbox-preview>, Python standard library only.

    python3 docs/embed/backend.py            # against `make run` (reads .local/demo.json)
    PREVIEW_API_URL=https://api.example.com PREVIEW_API_KEY=msk_... PREVIEW_SANDBOXES=sbx-1 \
    PREVIEW_FRAME_SRC='https://*.sandboxes.example.com' PORT=8080 python3 docs/embed/backend.py

It serves a page with the embed helper and POST /my-backend/preview, which mints a preview token
with the API key (it never reaches the browser) and answers the mint API's JSON. Decide there
whether the signed-in user may see the sandbox; this example allows a fixed list.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
HELPER = (HERE / "preview-embed.js").read_bytes()
VERSION = re.findall(rb'var VERSION = "([0-9.]+)";', HELPER)[0].decode()
HELPER_PATH = f"/preview-embed-{VERSION}.js"
INTEGRITY = "sha384-" + base64.b64encode(hashlib.sha384(HELPER).digest()).decode()


@dataclass(frozen=True)
class Settings:
    api_url: str
    api_key: str = field(repr=False)
    sandboxes: list[str]  # the sandboxes this backend lets its users preview
    frame_src: str  # the preview domain, for this page's CSP

    @classmethod
    def load(cls) -> Settings:
        """From the environment, else from the local stack's .local/demo.json."""
        if os.environ.get("PREVIEW_API_KEY"):
            return cls(
                os.environ["PREVIEW_API_URL"].rstrip("/"),
                os.environ["PREVIEW_API_KEY"],
                os.environ["PREVIEW_SANDBOXES"].split(","),
                os.environ["PREVIEW_FRAME_SRC"],
            )
        demo_file = os.environ.get("PREVIEW_LOCAL_DEMO_JSON") or HERE.parents[1] / ".local" / "demo.json"
        demo = json.loads(Path(demo_file).read_text(encoding="utf-8"))
        frame_src = f"http://*.{demo['preview_domain']}:{demo['port']}"
        return cls(demo["api_url"], demo["api_key"], demo["sandbox_ids"], frame_src)


SETTINGS = Settings.load()


def mint(sandbox_id: str, scope: object, expires_in: object) -> tuple[int, object]:
    body: dict[str, object] = {"scope": scope} if scope is not None else {}
    if expires_in is not None:
        body["expires_in"] = expires_in
    request = urllib.request.Request(  # noqa: S310 - the configured API URL
        f"{SETTINGS.api_url}/api/v1/sandboxes/{quote(sandbox_id, safe='')}/preview-token",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {SETTINGS.api_key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            minted = json.loads(response.read())
            return 200, {key: minted[key] for key in ("url", "expires_at", "scope")}
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")
    except (urllib.error.URLError, TimeoutError, ValueError):
        return 502, {"error": {"code": "mint_unreachable", "message": "the preview API did not answer"}}


class Backend(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == HELPER_PATH:
            self.reply(200, HELPER, "text/javascript; charset=utf-8")
        elif self.path == "/":
            page = (HERE / "example.html").read_text(encoding="utf-8")
            for name, value in (
                ("script_path", HELPER_PATH),
                ("script_integrity", INTEGRITY),
                ("sandbox_id", SETTINGS.sandboxes[0]),
            ):
                page = page.replace("{{" + name + "}}", html.escape(value))
            self.reply(200, page.encode(), "text/html; charset=utf-8")
        else:
            self.reply(404, b"not found", "text/plain")

    def do_POST(self) -> None:
        if self.path != "/my-backend/preview":
            self.reply(404, b"not found", "text/plain")
            return
        try:
            wanted = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        except ValueError:
            wanted = None
        if not isinstance(wanted, dict) or wanted.get("sandbox_id") not in SETTINGS.sandboxes:
            self.reply_json(403, {"error": {"code": "forbidden", "message": "not your sandbox"}})
            return
        status, document = mint(wanted["sandbox_id"], wanted.get("scope"), wanted.get("expires_in"))
        self.reply_json(status, document)

    def reply_json(self, status: int, document: object) -> None:
        self.reply(status, json.dumps(document).encode(), "application/json")

    def reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        policy = (
            f"default-src 'self'; img-src 'self' data:; frame-src {SETTINGS.frame_src}; "
            "base-uri 'none'; form-action 'none'"
        )
        self.send_header("Content-Security-Policy", policy)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: a request line would show nothing secret, but nothing useful either."""


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer(("127.0.0.1", port), Backend)
    print(f"example backend on http://127.0.0.1:{server.server_address[1]}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)
