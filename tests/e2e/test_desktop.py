"""The desktop sandbox in Debian's chromium, framed by the demo page: noVNC over the stream path.

What reached the desktop is read on the sandbox's side (the X app's own input log, through the
preview host), never from the page. With ``read`` the fleet ingress drops every frame the viewer
sends; the desktop app drives the RFB client itself towards its view-only x11vnc.
Screenshots of both scopes go to ``test-artifacts/``.
"""

from __future__ import annotations

import secrets
import socket
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import FrameLocator, Page

from tests.e2e.local_stack import LocalStack, fetch
from tests.e2e.test_browser import TIMEOUT_MS, open_preview, preview


def ingress_lines(stack: LocalStack) -> list[str]:
    """The fleet ingresses' lines (one per request or stream) in the stack's log."""
    lines = stack.stderr_path.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.startswith("[ingress]")]


pytestmark = pytest.mark.e2e

# A hash of the canvas' pixels and how many distinct colours it has (noVNC draws the desktop there).
CANVAS_SAMPLE = """() => {
  const canvas = document.querySelector('#screen canvas');
  const context = canvas.getContext('2d');
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
  const colours = new Set();
  let hash = 0;
  for (let i = 0; i < pixels.length; i += 4) {
    const colour = (pixels[i] << 16) | (pixels[i + 1] << 8) | pixels[i + 2];
    colours.add(colour);
    hash = (hash * 31 + colour) | 0;
  }
  return {width: canvas.width, height: canvas.height, colours: colours.size, hash};
}"""


def desktop_received(stack: LocalStack) -> dict[str, Any]:
    """What the desktop's app received: typed text and clicks (its own log, asked of the origin)."""
    desktop = stack.demo["desktop_sandbox_id"]  # asked through the data plane: the origin trusts nothing else
    reply = fetch(
        f"{stack.preview_origin(desktop)}/api/desktop", headers={"Cookie": stack.preview_session(desktop)}
    )
    assert reply.status == 200, reply.text
    received: dict[str, Any] = reply.json()
    return received


def open_desktop(
    page: Page,
    stack: LocalStack,
    scope: str,
    ttl_seconds: int = 600,
    renew: str = "auto",
    navigate: bool = True,
) -> FrameLocator:
    if navigate:
        page.goto(stack.demo["demo_url"])
    page.locator("#mint-status[data-state=ok]").wait_for(timeout=TIMEOUT_MS)
    open_preview(page, stack.demo["desktop_sandbox_id"], scope, ttl_seconds, renew)
    frame = preview(page)
    frame.locator("#status[data-state=connected]").wait_for(timeout=TIMEOUT_MS)
    return frame


def wait_for_changing_desktop(page: Page, frame: FrameLocator) -> None:
    """The canvas shows a desktop (many colours) and it changes (the app's clock ticks)."""
    canvas = frame.locator("#screen canvas")
    first: dict[str, Any] = canvas.evaluate(CANVAS_SAMPLE.replace("() =>", "(_) =>"))
    for _ in range(100):
        page.wait_for_timeout(100)
        later: dict[str, Any] = canvas.evaluate(CANVAS_SAMPLE.replace("() =>", "(_) =>"))
        if later["colours"] > 8 and later["hash"] != first["hash"]:
            assert later["width"] >= 640
            return
    raise AssertionError(f"the desktop is blank or frozen: {first} then {later}")


def type_and_click(page: Page, frame: FrameLocator, text: str) -> None:
    canvas = frame.locator("#screen canvas")
    canvas.click(position={"x": 200, "y": 200})
    page.keyboard.type(text, delay=30)
    canvas.click(position={"x": 260, "y": 240})


def test_read_shows_the_desktop_and_input_never_reaches_it_while_interact_does(
    page: Page, stack: LocalStack, artifacts: Path
) -> None:
    before = desktop_received(stack)
    read_typed, interact_typed = "r" + secrets.token_hex(4), "i" + secrets.token_hex(4)

    frame = open_desktop(page, stack, "read")
    wait_for_changing_desktop(page, frame)
    type_and_click(page, frame, read_typed)
    page.screenshot(path=artifacts / "f-desktop-read.png")

    frame = open_desktop(page, stack, "interact")
    wait_for_changing_desktop(page, frame)
    type_and_click(page, frame, interact_typed)
    for _ in range(150):
        received = desktop_received(stack)
        if interact_typed in received["typed"] and received["clicks"] >= before["clicks"] + 2:
            break
        page.wait_for_timeout(100)
    page.screenshot(path=artifacts / "g-desktop-interact.png")

    received = desktop_received(stack)
    assert interact_typed in received["typed"], "interact: the typed text reached the desktop's app"
    assert read_typed not in received["typed"], "read: the typed text never reached the desktop's app"
    # Only the interact session's two clicks arrived (the read session's were dropped by x11vnc).
    assert received["clicks"] == before["clicks"] + 2


def test_after_expiry_the_stream_closes_and_the_parent_is_told(
    page: Page, stack: LocalStack, artifacts: Path
) -> None:
    # Renewal off, and the page handles the end itself (no re-mint): the stream's end is the
    # preview's end, and the page learns it from the frame.
    page.goto(stack.demo["demo_url"])
    page.evaluate(
        "document.getElementById('preview').addEventListener('preview-expired', (e) => e.preventDefault())"
    )
    frame = open_desktop(page, stack, "interact", ttl_seconds=6, renew="off", navigate=False)
    wait_for_changing_desktop(page, frame)
    opened = len(ingress_lines(stack))

    page.locator("#message-log li:has-text('preview.expired')").first.wait_for(timeout=20_000)

    ended = [line for line in ingress_lines(stack)[opened:] if '"path":"/websockify"' in line]
    assert ended, "the ingress's line for the desktop stream"
    assert '"closed":"expired"' in ended[0], "the ingress closed it at the token's exp, not the browser"
    page.screenshot(path=artifacts / "h-desktop-expired.png")


def test_two_desktops_started_at_once_each_keep_their_own_display(tmp_path: Path) -> None:
    """Two local stacks (two test workers, two ``make run``) start their desktops at once: each
    gets a display of its own, so stopping one leaves the other's VNC servers serving."""
    import threading

    from preview_local.desktop import DesktopSandbox

    started: list[DesktopSandbox] = []
    threads = [
        threading.Thread(target=lambda d=tmp_path / name: started.append(DesktopSandbox.start(d)))
        for name in ("first", "second")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first, second = started
    try:
        first.stop()
        for port in second.rfb_ports.values():
            with socket.create_connection(("127.0.0.1", port), timeout=5) as rfb:
                rfb.settimeout(5)
                assert rfb.recv(12).startswith(b"RFB 003.")  # x11vnc still has its display
        assert first.display != second.display
    finally:
        first.stop()
        second.stop()
