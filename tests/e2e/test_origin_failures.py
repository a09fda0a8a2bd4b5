"""An origin that is down or hangs, in Debian's chromium: the styled page, and the parent is told.

A second local stack proxies to an address this test controls (``PREVIEW_LOCAL_SANDBOX_ORIGIN_URL``)
with a 1 s integration timeout (``PREVIEW_LOCAL_INTEGRATION_TIMEOUT_SECONDS``; API Gateway's is
29 s): first nothing listens there (connection refused: ``INTEGRATION_FAILURE``), then a socket
accepts connections and never answers (``INTEGRATION_TIMEOUT``).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.e2e.embed_page import (
    TIMEOUT_MS,
    VISIBLE_FRAME,
    events,
    open_recorded_page,
    wait_for_events,
)
from tests.e2e.local_stack import LocalStack, free_port

pytestmark = pytest.mark.e2e

UNREACHABLE = {"type": "preview.unavailable", "reason": "origin_unreachable", "sandboxId": None}


class SilentOrigin:
    """Accepts connections on ``port`` and never answers (until closed)."""

    def __init__(self, port: int) -> None:
        self._listener = socket.create_server(("127.0.0.1", port))
        self._accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self._accepted.append(connection)

    def close(self) -> None:
        self._listener.close()
        for connection in self._accepted:
            connection.close()


@pytest.fixture(scope="module")
def origin_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def failing_stack(tmp_path_factory: pytest.TempPathFactory, origin_port: int) -> Iterator[LocalStack]:
    running = LocalStack.start(
        tmp_path_factory.mktemp("failing-origin"),
        {
            "PREVIEW_LOCAL_SANDBOX_ORIGIN_URL": f"http://127.0.0.1:{origin_port}",
            "PREVIEW_LOCAL_INTEGRATION_TIMEOUT_SECONDS": "1",
        },
    )
    yield running
    assert running.stop() == 0, running.output()


def shows_sandbox_not_responding(page: Page, artifacts: Path, name: str) -> None:
    wait_for_events(page, "preview-unavailable", 1)
    frame = page.frame_locator(VISIBLE_FRAME)
    frame.locator("h1:text-is('Sandbox not responding')").wait_for(timeout=TIMEOUT_MS)
    assert events(page, "preview-unavailable") == [UNREACHABLE]
    assert '"type":"preview.unavailable"' in page.inner_text("#message-log")
    assert events(page, "preview-ready") == []
    page.screenshot(path=artifacts / name)


def test_an_origin_that_is_down_gives_the_styled_page_and_the_parent_receives_unavailable(
    page: Page, failing_stack: LocalStack, artifacts: Path
) -> None:
    page_url = failing_stack.preview_origin("sbx-demo") + "/"  # after the exchange and the cookie check
    with page.expect_response(page_url) as answer:
        open_recorded_page(page, failing_stack.demo["demo_url"])
    assert answer.value.status == 504
    shows_sandbox_not_responding(page, artifacts, "g-origin-down.png")


def test_an_origin_that_hangs_gives_the_styled_page_after_the_integration_timeout(
    page: Page, failing_stack: LocalStack, origin_port: int, artifacts: Path
) -> None:
    hanging = SilentOrigin(origin_port)
    try:
        open_recorded_page(page, failing_stack.demo["demo_url"])
        shows_sandbox_not_responding(page, artifacts, "g-origin-hangs.png")
    finally:
        hanging.close()
