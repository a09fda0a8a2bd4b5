"""An app that is down or hangs behind the fleet ingress.

A second local stack serves its demo sandboxes from an address this test controls
(``PREVIEW_LOCAL_SANDBOX_ORIGIN_URL``), with CloudFront's response timeout on the fleet-ingress
origin shortened to 1 s (``PREVIEW_LOCAL_ORIGIN_READ_TIMEOUT_SECONDS``; the template's is
``OriginReadTimeout``). Nothing listens there: the ingress answers its styled "Sandbox not
responding" page (502) and the parent is told, in Debian's chromium. A socket that accepts and
never answers: CloudFront gives up at its response timeout with a 504, as CloudFront does
("Response timeout", DownloadDistValuesOrigin.html).
"""

from __future__ import annotations

import contextlib
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
from tests.e2e.local_stack import LocalStack, fetch, free_port

pytestmark = pytest.mark.e2e

UNREACHABLE = {"type": "preview.unavailable", "reason": "origin_unreachable", "sandboxId": "sbx-demo"}


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
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (close alone does not)
        self._listener.close()
        self._thread.join(timeout=5)  # no connection is accepted after this
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
            "PREVIEW_LOCAL_ORIGIN_READ_TIMEOUT_SECONDS": "1",
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
    page.wait_for_timeout(500)  # past the helper's 150 ms settle: a "ready" would have come by now
    assert events(page, "preview-ready") == []
    page.screenshot(path=artifacts / name)


def test_an_origin_that_is_down_gives_the_styled_page_and_the_parent_receives_unavailable(
    page: Page, failing_stack: LocalStack, artifacts: Path
) -> None:
    page_url = failing_stack.preview_origin("sbx-demo") + "/"  # after the exchange and the cookie check
    with page.expect_response(page_url) as answer:
        open_recorded_page(page, failing_stack.demo["demo_url"])
    assert answer.value.status == 502
    shows_sandbox_not_responding(page, artifacts, "g-origin-down.png")


def test_an_origin_that_hangs_is_cloudfronts_504_at_the_origin_response_timeout(
    failing_stack: LocalStack, origin_port: int
) -> None:
    sandbox_id = failing_stack.demo["sandbox_id"]
    hanging = SilentOrigin(origin_port)
    try:
        reply = fetch(
            f"{failing_stack.preview_origin(sandbox_id)}/",
            headers={"Cookie": failing_stack.preview_session(sandbox_id)},
        )
    finally:
        hanging.close()

    assert reply.status == 504
