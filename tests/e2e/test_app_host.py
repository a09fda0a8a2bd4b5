"""Which ``Host`` a developer's app gets behind ``make run``: its own by default, or the viewer's.

By default each app gets its own ``Host`` and the preview host in ``X-Forwarded-Host``, and a page of
the preview host reaches it with the app's own ``Origin``: what Vite's host check and Jupyter's or
Django's origin checks take, as on localhost. An app whose checks use ``X-Forwarded-Host`` (Rails:
its host authorization, and its form posts' ``Origin`` compared with the URL it builds from that
header) is named in ``PREVIEW_LOCAL_PRESERVE_HOST`` (or ``--app-preserve-host``): its ingress runs
with ``--preserve-host`` and the app gets the viewer's ``Host`` and ``Origin`` as sent.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from preview_local.apps import PRESERVE_HOST_ENV

from tests.e2e.local_stack import LocalStack, fetch
from tests.support.http_server import answer, serving

pytestmark = pytest.mark.e2e

OWN_HOST, VIEWERS_HOST = "sbx-own-host", "sbx-viewers-host"


class _Echo(BaseHTTPRequestHandler):
    """Answers with the headers it received that say which host and origin the request is for."""

    def do_GET(self) -> None:
        seen = {name: self.headers.get(name) for name in ("Host", "X-Forwarded-Host", "Origin")}
        answer(self, json.dumps(seen).encode(), "application/json")

    def log_message(self, format: str, *args: object) -> None:
        pass


def _seen(stack: LocalStack, sandbox_id: str) -> dict[str, Any]:
    """What the app got for a request of the preview's own page (``Origin``: the preview host)."""
    preview = stack.preview_origin(sandbox_id)
    reply = fetch(
        f"{preview}/whoami",
        headers={"Cookie": stack.preview_session(sandbox_id), "Origin": preview},
    )
    assert reply.status == 200, reply.text
    seen: dict[str, Any] = reply.json()
    return seen


def test_an_app_gets_its_own_host_by_default_and_the_viewers_when_named_to_keep_it(tmp_path: Path) -> None:
    with serving(_Echo) as server:
        app = f"http://127.0.0.1:{server.server_port}"
        stack = LocalStack.start(
            tmp_path, environment={PRESERVE_HOST_ENV: VIEWERS_HOST}, apps={OWN_HOST: app, VIEWERS_HOST: app}
        )
        try:
            own, viewers = _seen(stack, OWN_HOST), _seen(stack, VIEWERS_HOST)
            demo = stack.demo
            banner = stack.output()
        finally:
            exit_code = stack.stop()

    app_authority = app.removeprefix("http://")
    own_preview = stack.preview_origin(OWN_HOST).removeprefix("http://")
    viewers_preview = stack.preview_origin(VIEWERS_HOST).removeprefix("http://")
    assert own == {"Host": app_authority, "X-Forwarded-Host": own_preview, "Origin": app}
    assert viewers == {
        "Host": viewers_preview,
        "X-Forwarded-Host": viewers_preview,
        "Origin": f"http://{viewers_preview}",
    }
    assert demo["preserve_host"] == [VIEWERS_HOST]
    assert f"app {VIEWERS_HOST} ({app}, gets the viewer's Host)" in banner
    assert f"app {OWN_HOST} ({app})  open" in banner
    assert exit_code == 0, banner
