"""Real third-party apps as sandboxes, in Debian's chromium, framed by a page on another origin.

The local stack runs with the apps registered (``PREVIEW_LOCAL_APPS``): every request goes front
door (the local CloudFront) -> ``PreviewEdge`` -> exchange or fleet ingress -> the app. Each test
mints through the API as an integrator's backend would, and frames the minted URL from a page on
``http://127.0.0.1:<port>`` (another site than ``*.preview.localhost``).

- Vite 8 + React (``@vitejs/plugin-react``): renders; an edited component arrives by Fast Refresh
  over Vite's HMR WebSocket with no reload (the counter's state and a window marker survive); an
  edited stylesheet restyles the page; the same with ``read``. Under the embed helper's renewal
  with 15 s tokens, the page and its HMR WebSocket outlive two token ends: no reload, and an edit
  made after them still arrives by Fast Refresh.
- Jupyter Server + ipykernel (its kernel WebSocket ``/api/kernels/<id>/channels``): with
  ``interact`` a cell runs and prints; with ``read`` the notebook shows, nothing runs, and the
  kernel's own debug log never sees the viewer's message.
- tests/apps/streams_app.py: server-sent events arrive one by one (the first before the last is
  sent), a 100 MB download and a 20 MB upload arrive intact (SHA-256).

Screenshots go to ``test-artifacts/real-apps-*.png``. Install the apps first: ``make real-apps``.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import ConsoleMessage, Frame, Page

from tests.apps.streams_app import DOWNLOAD_BYTES, EVENTS, SESSION_COOKIE, pattern_sha256
from tests.e2e.conftest import _CREDENTIAL
from tests.e2e.embed_page import VISIBLE_FRAME, visible_frame
from tests.e2e.local_stack import LocalStack, fetch
from tests.e2e.real_apps import (
    OWNER_XSRF,
    RunningApp,
    embedding_server,
    embedding_url,
    jupyter_app,
    missing_installs,
    start_kernel,
    streams_app,
    vite_app,
)

pytestmark = pytest.mark.e2e

TIMEOUT_MS = 60_000  # a wait, not a speed check: generous for a loaded 2-core machine
TRANSFER_TIMEOUT_MS = 300_000  # 100 MB through four hops on a shared 2-core machine
UPLOAD_BYTES = 20 * 1024 * 1024
VITE, JUPYTER, STREAMS = "sbx-vite", "sbx-jupyter", "sbx-streams"


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RunningApp]]:
    missing = missing_installs()
    if missing:
        pytest.fail(f"not installed: {', '.join(missing)}; `make real-apps` installs them from their locks")
    workdir = tmp_path_factory.mktemp("real-apps")
    with (
        vite_app(workdir, workdir) as vite,
        jupyter_app(workdir, workdir) as jupyter,
        streams_app(workdir, workdir) as streams,
    ):
        yield {VITE: vite, JUPYTER: jupyter, STREAMS: streams}


@pytest.fixture(scope="module")
def apps_stack(apps: dict[str, RunningApp], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A local stack of its own, with the three apps registered as sandboxes of the demo tenant."""
    running = LocalStack.start(
        tmp_path_factory.mktemp("preview-local-apps"), apps={key: app.url for key, app in apps.items()}
    )
    yield running
    exit_code = running.stop()
    assert exit_code == 0, f"preview-local did not stop cleanly ({exit_code}):\n{running.output()}"
    logged = running.stderr_path.read_text(encoding="utf-8").splitlines()
    assert [line for line in logged if _CREDENTIAL.search(line)] == [], "credentials in the stack's log lines"


@pytest.fixture(scope="module")
def embedder() -> Iterator[str]:
    with embedding_server() as url:
        yield url


class Framed:
    """The embedding page with one preview in ``#app``, and how often that frame navigated."""

    def __init__(self, page: Page, stack: LocalStack, sandbox_id: str) -> None:
        self.page, self.origin = page, stack.preview_origin(sandbox_id)
        self.navigations = 0
        self.console: list[str] = []
        page.on("framenavigated", self._navigated)
        page.on("console", self._logged)

    def _navigated(self, frame: Frame) -> None:
        if frame.parent_frame is not None:
            self.navigations += 1

    def _logged(self, message: ConsoleMessage) -> None:
        self.console.append(message.text)

    @property
    def frame(self) -> Frame:
        handle = self.page.locator("#app").element_handle()
        assert handle is not None
        frame = handle.content_frame()
        assert frame is not None
        return frame


def open_framed(page: Page, stack: LocalStack, embedder: str, sandbox_id: str, scope: str) -> Framed:
    """Mint as the integrator's backend would, frame the URL from the other origin, wait for the app."""
    minted = stack.mint(stack.demo["api_key"], sandbox_id, {"scope": scope})
    assert minted.status == 200, minted.text
    framed = Framed(page, stack, sandbox_id)
    page.goto(embedding_url(embedder, minted.json()["url"], f"{sandbox_id}, scope {scope}"))
    # The exchange (?mt=, then /__preview/cookie-check) redirects; the app's own page loads last.
    framed.frame.wait_for_url(
        lambda url: url.startswith(framed.origin + "/") and "mt=" not in url and "/__preview/" not in url,
        wait_until="load",
        timeout=TIMEOUT_MS,
    )
    return framed


def test_the_stack_registers_each_app_as_a_sandbox(
    apps_stack: LocalStack, apps: dict[str, RunningApp]
) -> None:
    assert apps_stack.demo["apps"] == {key: app.url for key, app in apps.items()}
    # an example backend that lets its page preview the demo tenant's sandboxes offers the apps too
    assert set(apps) <= set(apps_stack.demo["sandbox_ids"])


# --- Vite + React -------------------------------------------------------------------------------


def _write_title(app: RunningApp, title: str) -> None:
    source = app.workdir / "src" / "App.jsx"
    text = source.read_text(encoding="utf-8")
    edited = re.sub(r'<h1 id="title">[^<]*</h1>', f'<h1 id="title">{title}</h1>', text)
    source.write_text(edited, encoding="utf-8")


def _write_title_color(app: RunningApp, color: str) -> None:
    (app.workdir / "src" / "App.css").write_text(f"#title {{\n  color: {color};\n}}\n", encoding="utf-8")


@pytest.mark.parametrize("scope", ["interact", "read"])
def test_vite_react_renders_and_fast_refresh_updates_the_frame_without_a_reload(
    page: Page,
    apps_stack: LocalStack,
    apps: dict[str, RunningApp],
    embedder: str,
    artifacts: Path,
    scope: str,
) -> None:
    vite = apps[VITE]
    framed = open_framed(page, apps_stack, embedder, VITE, scope)
    frame = framed.frame
    frame.locator("#title").wait_for(timeout=TIMEOUT_MS)
    frame.locator("#counter").wait_for(timeout=TIMEOUT_MS)
    # Vite's client says so once its HMR WebSocket (subprotocol vite-hmr) is open.
    _wait_for(lambda: any("[vite] connected" in line for line in framed.console), "Vite's HMR connection")

    frame.evaluate("window.__previewMarker = 'kept'")
    for _ in range(3):
        frame.locator("#counter").click()
    frame.locator("#counter:text-is('count is 3')").wait_for(timeout=TIMEOUT_MS)
    navigations = framed.navigations

    title = f"Edited {scope} {secrets.token_hex(3)}"
    _write_title(vite, title)
    frame.locator(f"#title:text-is('{title}')").wait_for(timeout=TIMEOUT_MS)
    assert frame.locator("#counter").inner_text() == "count is 3", "Fast Refresh lost the component's state"

    color = "rgb(200, 30, 30)" if scope == "interact" else "rgb(30, 140, 60)"
    _write_title_color(vite, color)
    frame.wait_for_function(
        "color => getComputedStyle(document.getElementById('title')).color === color",
        arg=color,
        timeout=TIMEOUT_MS,
    )

    assert frame.evaluate("window.__previewMarker") == "kept", "the frame reloaded"
    assert framed.navigations == navigations, "the frame navigated"
    assert frame.locator("#counter").inner_text() == "count is 3"
    assert any("[vite] hot updated" in line for line in framed.console), framed.console
    page.screenshot(path=artifacts / f"real-apps-vite-react-{scope}.png")


RENEWAL_TTL_SECONDS = 15


def test_vite_keeps_its_page_and_hmr_socket_across_renewed_tokens(
    page: Page, apps_stack: LocalStack, apps: dict[str, RunningApp], artifacts: Path
) -> None:
    """The demo page's embed helper renews in place; the HMR socket opened on the first token is
    kept open by the fleet ingress past that token's end (a renewal link), so Vite's client never
    sees it close (it would reload the page: "server connection lost. Polling for restart...")."""
    vite = apps[VITE]
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(apps_stack.demo["demo_url"])
    page.locator("#mint-status[data-state=ok]").wait_for(timeout=TIMEOUT_MS)
    page.select_option("#sandbox", VITE)
    page.select_option("#renew", "auto")
    page.check("input[name=scope][value=interact]")
    page.fill("#expires-in", str(RENEWAL_TTL_SECONDS))
    page.evaluate("document.getElementById('mint-status').dataset.state = 'idle'")
    page.click("#open-preview")
    page.locator("#mint-status[data-state=ok]").wait_for(timeout=TIMEOUT_MS)
    page.frame_locator(VISIBLE_FRAME).locator("#counter").wait_for(timeout=TIMEOUT_MS)
    frame = visible_frame(page)
    _wait_for(lambda: any("[vite] connected" in line for line in console), "Vite's HMR connection")
    frame.evaluate("window.__previewMarker = 'kept'")
    for _ in range(2):
        frame.locator("#counter").click()
    frame.locator("#counter:text-is('count is 2')").wait_for(timeout=TIMEOUT_MS)

    page.wait_for_function("() => Number(document.getElementById('renewal-count').textContent) >= 1")
    second_end = _session_end(page)
    time.sleep(max(0.0, second_end - time.time() + 2.5))  # past the first and the second token's end
    title = f"After two token ends {secrets.token_hex(3)}"
    _write_title(vite, title)
    frame.locator(f"#title:text-is('{title}')").wait_for(timeout=TIMEOUT_MS)
    page.screenshot(path=artifacts / "real-apps-vite-react-renewed.png")

    assert frame.evaluate("window.__previewMarker") == "kept", "the frame reloaded"
    assert frame.locator("#counter").inner_text() == "count is 2", "the page's state was lost"
    assert not [line for line in console if "server connection lost" in line], console
    assert page.inner_text("#remint-count") == "0"
    assert time.time() > second_end


def _session_end(page: Page) -> float:
    value: str = page.evaluate("document.getElementById('preview').expiresAt")
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


# --- Jupyter Server -----------------------------------------------------------------------------


def _fresh_kernel(jupyter: RunningApp) -> str:
    """Only one kernel on the server, new (its execution count at 0): the one the page connects to."""
    for kernel in fetch(f"{jupyter.url}/api/kernels").json():
        assert fetch(f"{jupyter.url}/api/kernels/{kernel['id']}", "DELETE", OWNER_XSRF).status == 204
    return start_kernel(jupyter)


def _wait_for(condition: object, what: str, timeout_seconds: float = TIMEOUT_MS / 1000) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout_seconds:.0f} s for {what}")
        time.sleep(0.2)


def test_jupyter_with_interact_runs_a_cell_and_prints(
    page: Page, apps_stack: LocalStack, apps: dict[str, RunningApp], embedder: str, artifacts: Path
) -> None:
    jupyter = apps[JUPYTER]
    _fresh_kernel(jupyter)
    marker = "ran-" + secrets.token_hex(4)

    frame = open_framed(page, apps_stack, embedder, JUPYTER, "interact").frame
    frame.locator("#kernel[data-state=connected]").wait_for(timeout=TIMEOUT_MS)
    frame.locator("#code").fill(f"print('{marker}'); print(6 * 7)")
    frame.locator("#run").click()
    frame.locator("#prompt[data-status=ok]").wait_for(timeout=TIMEOUT_MS)
    # The kernel's reply and its output come on two channels, in either order.
    frame.locator("#output[data-lines='2']").wait_for(timeout=TIMEOUT_MS)

    assert frame.locator("#output").inner_text().split() == [marker, "42"]
    assert frame.locator("#prompt").inner_text() == "In [1]:"
    assert marker in jupyter.log(), "the kernel's log does not show the executed cell"
    page.screenshot(path=artifacts / "real-apps-jupyter-interact.png")


def test_jupyter_with_read_shows_the_notebook_and_runs_nothing(
    page: Page, apps_stack: LocalStack, apps: dict[str, RunningApp], embedder: str, artifacts: Path
) -> None:
    jupyter = apps[JUPYTER]
    kernel_id = _fresh_kernel(jupyter)
    marker = "read-" + secrets.token_hex(4)

    framed = open_framed(page, apps_stack, embedder, JUPYTER, "read")
    frame = framed.frame
    frame.locator("#kernel[data-state=connected]").wait_for(timeout=TIMEOUT_MS)
    frame.locator("#code").fill(f"print('{marker}')")
    frame.locator("#run").click()
    frame.locator("#sent[data-count='1']").wait_for(timeout=TIMEOUT_MS)
    page.screenshot(path=artifacts / "real-apps-jupyter-read.png")
    browser = page.context.browser
    assert browser is not None
    page.context.close()  # the viewer leaves: its WebSocket closes after the message it sent

    def connections() -> int:
        count: int = fetch(f"{jupyter.url}/api/kernels/{kernel_id}").json()["connections"]
        return count

    _wait_for(lambda: connections() == 0, "the viewer's kernel connection to close")
    channels = f"/api/kernels/{kernel_id}/channels"
    _wait_for(lambda: _stream_lines(apps_stack, channels), "the ingress's line for the viewer's WebSocket")
    [stream] = _stream_lines(apps_stack, channels)
    assert (stream["scope"], stream["to_app"], stream["dropped"]) == ("read", 0, 1), stream
    # The owner, on the app directly, runs a cell: it is the kernel's first execution.
    probe = "probe-" + secrets.token_hex(4)
    direct = browser.new_page()
    try:
        direct.goto(f"{jupyter.url}/static/cell.html")
        direct.locator("#kernel[data-state=connected]").wait_for(timeout=TIMEOUT_MS)
        direct.locator("#code").fill(f"print('{probe}')")
        direct.locator("#run").click()
        direct.locator("#prompt[data-status=ok]").wait_for(timeout=TIMEOUT_MS)
        assert direct.locator("#prompt").inner_text() == "In [1]:", "the viewer's cell ran before it"
        direct.locator("#output[data-lines='1']").wait_for(timeout=TIMEOUT_MS)  # before the reply or after
        assert direct.locator("#output").inner_text().strip() == probe
    finally:
        direct.context.close()
    log = jupyter.log()
    assert probe in log, "the kernel's debug log shows every message it receives"
    assert marker not in log, "the viewer's message reached the app"


def _stream_lines(stack: LocalStack, path: str) -> list[dict[str, Any]]:
    """The fleet ingress's lines (``[ingress] {...}`` on the stack's stderr) for WebSockets on ``path``."""
    lines = []
    for line in stack.stderr_path.read_text(encoding="utf-8").splitlines():
        if line.startswith("[ingress] {"):
            record: dict[str, Any] = json.loads(line.removeprefix("[ingress] "))
            if record.get("event") == "websocket" and record.get("path") == path:
                lines.append(record)
    return lines


# --- Server-sent events, a 100 MB download, a 20 MB upload ---------------------------------------


def _streams_status(streams: RunningApp) -> dict[str, object]:
    status: dict[str, object] = fetch(f"{streams.url}/status").json()
    return status


def test_server_sent_events_arrive_one_by_one(
    page: Page, apps_stack: LocalStack, apps: dict[str, RunningApp], embedder: str, artifacts: Path
) -> None:
    streams = apps[STREAMS]
    frame = open_framed(page, apps_stack, embedder, STREAMS, "read").frame
    frame.locator("#events li").first.wait_for(timeout=TIMEOUT_MS)

    # The app holds its last event until it is released, on the app itself: it is not sent yet.
    assert _streams_status(streams)["events_sent"] != EVENTS
    assert int(frame.locator("#events").get_attribute("data-count") or 0) < EVENTS
    page.screenshot(path=artifacts / "real-apps-sse-before-the-last.png")
    assert fetch(f"{streams.url}/release", "POST").status == 200
    frame.locator(f"#events[data-count='{EVENTS}']").wait_for(timeout=TIMEOUT_MS)

    assert frame.locator("#events li").all_inner_texts() == [
        f"event {n} of {EVENTS}" + (" last" if n == EVENTS else "") for n in range(1, EVENTS + 1)
    ]
    page.screenshot(path=artifacts / "real-apps-sse.png")


@pytest.mark.parametrize("scope", ["read", "interact"])
def test_the_apps_own_session_cookie_is_kept_in_the_cross_site_frame(
    page: Page, apps_stack: LocalStack, embedder: str, scope: str
) -> None:
    # The app sets it as frameworks do by default (SameSite=Lax, HttpOnly): a browser keeps no such
    # cookie in a frame on another site, so the ingress relays it partitioned for the frame.
    frame = open_framed(page, apps_stack, embedder, STREAMS, scope).frame

    seen = frame.evaluate("fetch('/whoami').then(reply => reply.json())")

    assert SESSION_COOKIE in seen["cookies"], seen
    assert not [name for name in seen["cookies"] if name.lower().startswith("__host-mp_")]


def test_a_100_mb_download_arrives_intact(
    page: Page, apps_stack: LocalStack, apps: dict[str, RunningApp], embedder: str, artifacts: Path
) -> None:
    frame = open_framed(page, apps_stack, embedder, STREAMS, "read").frame
    frame.locator("#download").click()
    result = frame.locator("#download-result[data-state=done]")
    result.wait_for(timeout=TRANSFER_TIMEOUT_MS)

    assert result.get_attribute("data-bytes") == str(DOWNLOAD_BYTES)
    assert result.get_attribute("data-sha256") == pattern_sha256(DOWNLOAD_BYTES)
    page.screenshot(path=artifacts / "real-apps-download.png")


def test_a_20_mb_upload_with_interact_arrives_intact_and_read_sends_none(
    page: Page, apps_stack: LocalStack, apps: dict[str, RunningApp], embedder: str, artifacts: Path
) -> None:
    streams = apps[STREAMS]
    before = list(json.loads(json.dumps(_streams_status(streams)["uploads"])))

    frame = open_framed(page, apps_stack, embedder, STREAMS, "interact").frame
    frame.locator("#upload").click()
    result = frame.locator("#upload-result[data-state=done]")
    result.wait_for(timeout=TRANSFER_TIMEOUT_MS)
    assert result.get_attribute("data-status") == "200"
    assert result.get_attribute("data-bytes") == str(UPLOAD_BYTES)
    assert result.get_attribute("data-sha256") == result.get_attribute("data-sent")
    uploads = _streams_status(streams)["uploads"]
    assert isinstance(uploads, list)
    assert uploads[len(before) :] == [{"bytes": UPLOAD_BYTES, "sha256": result.get_attribute("data-sent")}]
    page.screenshot(path=artifacts / "real-apps-upload.png")

    read_page = page.context.new_page()
    read_frame = open_framed(read_page, apps_stack, embedder, STREAMS, "read").frame
    read_frame.locator("#upload").click()
    refused = read_frame.locator("#upload-result[data-state=done]")
    refused.wait_for(timeout=TRANSFER_TIMEOUT_MS)
    assert refused.get_attribute("data-status") != "200"
    assert _streams_status(streams)["uploads"] == uploads, "a read preview's upload reached the app"
