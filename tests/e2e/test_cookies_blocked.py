"""A browser that drops the preview's cookie inside a frame, in Debian's chromium.

Blocking third-party cookies alone proves nothing in Chromium: it keeps accepting ``Partitioned``
cookies (CHIPS), so the session still works (the first test shows it). Chromium 150 has no
switch left to turn CHIPS off (the ``PartitionedCookies`` feature is gone), but a user's
"block cookies of this site when embedded on that one" setting applies to partitioned cookies
too. The profile below blocks third-party cookies and cookies of ``[*.]sandboxes.localhost``
under the demo page's origin: what a browser without CHIPS (Safari before 26.2) or a strict
privacy mode does to the frame, while the same host opened top-level keeps its cookies.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Request
from preview_tokens.data_plane.access import SESSION_COOKIE, SESSION_ENDS_COOKIE

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.embed_page import (
    TIMEOUT_MS,
    VISIBLE_FRAME,
    events,
    open_embedding_page,
    open_recorded_page,
    visible_frame,
    wait_for_events,
    wait_for_sandbox,
)
from tests.e2e.local_stack import LocalStack

pytestmark = pytest.mark.e2e

BLOCK = 2  # Chromium's CONTENT_SETTING_BLOCK


def profile_preferences(stack: LocalStack, block_in_frames: bool) -> dict[str, object]:
    """Chromium preferences: third-party cookies blocked; and sandbox cookies under the demo page."""
    profile: dict[str, object] = {"cookie_controls_mode": 1, "block_third_party_cookies": True}
    if block_in_frames:
        pattern = f"[*.]{stack.demo['preview_domain']},http://127.0.0.1:{stack.port}"
        profile["content_settings"] = {"exceptions": {"cookies": {pattern: {"setting": BLOCK}}}}
    return {"profile": profile}


def launch_profile(
    browser: Browser, stack: LocalStack, directory: Path, block_in_frames: bool
) -> BrowserContext:
    (directory / "Default").mkdir(parents=True)
    preferences = profile_preferences(stack, block_in_frames)
    (directory / "Default" / "Preferences").write_text(json.dumps(preferences), encoding="utf-8")
    return browser.browser_type.launch_persistent_context(
        str(directory),
        executable_path=str(CHROMIUM),
        args=CHROMIUM_ARGS,
        headless=True,
        viewport={"width": 1100, "height": 820},
    )


@pytest.fixture
def blocking_profile(browser: Browser, stack: LocalStack, tmp_path: Path) -> Iterator[BrowserContext]:
    context = launch_profile(browser, stack, tmp_path / "profile", block_in_frames=True)
    yield context
    context.close()


def session_cookies(context: BrowserContext, sandbox_id: str) -> list[dict[str, object]]:
    return [
        dict(cookie)
        for cookie in context.cookies()
        if cookie["name"] in (SESSION_COOKIE, SESSION_ENDS_COOKIE) and cookie["domain"].startswith(sandbox_id)
    ]


def test_blocking_third_party_cookies_alone_still_keeps_the_partitioned_session(
    browser: Browser, stack: LocalStack, tmp_path: Path
) -> None:
    sandbox_id = stack.demo["sandbox_id"]
    context = launch_profile(browser, stack, tmp_path / "profile", block_in_frames=False)
    try:
        page = context.pages[0] if context.pages else context.new_page()
        open_embedding_page(page, stack.demo["demo_url"])
        wait_for_sandbox(page, sandbox_id)

        # third-party cookies are blocked (no unpartitioned cookie access in the frame) ...
        assert visible_frame(page).evaluate("document.hasStorageAccess()") is False
        # ... yet the partitioned session cookie was kept: this setting alone drops nothing
        cookies = session_cookies(context, sandbox_id)
        assert {cookie["name"] for cookie in cookies} == {SESSION_COOKIE, SESSION_ENDS_COOKIE}
        assert all(cookie.get("partitionKey") for cookie in cookies)
    finally:
        context.close()


def test_a_frame_whose_cookie_is_dropped_gets_the_cookies_blocked_page_and_a_new_tab_shows_the_sandbox(
    blocking_profile: BrowserContext, stack: LocalStack, artifacts: Path
) -> None:
    sandbox_id = stack.demo["sandbox_id"]
    page = blocking_profile.pages[0] if blocking_profile.pages else blocking_profile.new_page()
    checks: list[Request] = []
    page.on(
        "request",
        lambda request: checks.append(request) if "/__preview/cookie-check" in request.url else None,
    )

    open_recorded_page(page, stack.demo["demo_url"])
    wait_for_events(page, "preview-cookies-blocked", 1)

    # The cookie really is absent: the browser kept none, and the check request carried none.
    assert session_cookies(blocking_profile, sandbox_id) == []
    assert len(checks) == 1
    assert "cookie" not in checks[0].all_headers()
    # The frame shows the page, the helper raised the events, the sandbox was never reached.
    frame = page.frame_locator(VISIBLE_FRAME)
    assert frame.locator("h1").inner_text() == "Cookies blocked"
    assert frame.locator("#open-in-new-tab").is_visible()
    assert events(page, "preview-denied") == [
        {"type": "preview.denied", "reason": "cookies_blocked", "sandboxId": None}
    ]
    page.wait_for_timeout(500)  # past the helper's 150 ms settle: a "ready" would have come by now
    assert events(page, "preview-ready") == []
    assert '"reason":"cookies_blocked"' in page.inner_text("#message-log")
    page.screenshot(path=artifacts / "f-cookies-blocked-in-the-frame.png")

    with blocking_profile.expect_page(timeout=TIMEOUT_MS) as opened:
        frame.locator("#open-in-new-tab").click()
    tab = opened.value
    tab.locator(f"#sandbox-id:text-is('{sandbox_id}')").wait_for(timeout=TIMEOUT_MS)
    tab.locator("#check-xhr[data-loaded=true]").wait_for(timeout=TIMEOUT_MS)

    # Top-level, first-party: the cookie is allowed there, the sandbox shows with its assets.
    assert tab.url == stack.preview_origin(sandbox_id) + "/"
    assert tab.evaluate("window.opener") is None
    assert {cookie["name"] for cookie in session_cookies(blocking_profile, sandbox_id)} == {
        SESSION_COOKIE,
        SESSION_ENDS_COOKIE,
    }
    assert tab.locator("#credential-seen").inner_text() == "never"
    assert len(events(page, "preview-minted")) == 2  # the frame's URL, then a fresh one for the tab
    tab.screenshot(path=artifacts / "f-cookies-blocked-opened-in-a-new-tab.png")
