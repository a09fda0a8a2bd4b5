"""What reaches the browser from an app, whatever its status: the app cannot touch the session, and
only the tenant's declared origins can frame its previews.

No viewer-response function runs (CloudFront runs none on a status of 400 or more): the fleet
ingress removes every ``__Host-mp_*`` ``Set-Cookie`` and sets the tenant's ``frame-ancestors``
(the assertion's ``fa``) on every answer. These tests check what a real browser does with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import ConsoleMessage, Page
from preview_local.origin import APP_COOKIE, FORGED_SESSION, HOSTILE_PAGE
from preview_tokens.data_plane.access import SESSION_COOKIE, SESSION_ENDS_COOKIE

from tests.e2e.local_stack import LocalStack, fetch
from tests.e2e.test_browser import TIMEOUT_MS, open_demo, preview
from tests.e2e.test_operator_cli import operator

pytestmark = pytest.mark.e2e

# Navigate the embed helper's visible frame of the demo page to another URL.
SET_SRC = (
    "url => { document.getElementById('preview').shadowRoot"
    ".querySelector('iframe[data-state=visible]').src = url; }"
)


def cookies_of(page: Page, stack: LocalStack, sandbox_id: str) -> dict[str, str]:
    host = f"{sandbox_id}.{stack.demo['preview_domain']}"
    return {c["name"]: c["value"] for c in page.context.cookies() if c["domain"] == host}


def test_an_origin_page_that_sets_the_session_cookie_does_not_change_the_session(
    page: Page, stack: LocalStack, artifacts: Path
) -> None:
    # Given a preview open in the demo page, with its session cookie
    sandbox_id = stack.demo["sandbox_id"]
    open_demo(page, stack)
    before = cookies_of(page, stack, sandbox_id)
    assert before[SESSION_COOKIE].startswith("mp_")

    # When the sandbox serves a page whose response sets the data plane's cookies (and forbids framing)
    page.evaluate(SET_SRC, stack.preview_origin(sandbox_id) + HOSTILE_PAGE)
    preview(page).locator("#hostile").wait_for(timeout=TIMEOUT_MS)
    page.screenshot(path=artifacts / "e-hostile-origin-page.png")

    # Then the browser kept the data plane's cookies, and took the app's own cookie
    after = cookies_of(page, stack, sandbox_id)
    assert after[SESSION_COOKIE] == before[SESSION_COOKIE] != FORGED_SESSION
    assert after[SESSION_ENDS_COOKIE] == before[SESSION_ENDS_COOKIE]
    assert after[APP_COOKIE] == "dark"

    # And the session still opens the sandbox
    page.evaluate(SET_SRC, stack.preview_origin(sandbox_id) + "/")
    preview(page).locator("#check-xhr[data-loaded=true]").wait_for(timeout=TIMEOUT_MS)
    assert preview(page).locator("#credential-seen").inner_text() == "never"


@pytest.mark.parametrize("status", [200, 404, 500])
def test_no_answer_of_any_status_lets_an_app_cookie_named_like_ours_through(
    stack: LocalStack, status: int
) -> None:
    sandbox_id = stack.demo["sandbox_id"]

    reply = fetch(
        f"{stack.preview_origin(sandbox_id)}{HOSTILE_PAGE}?status={status}",
        headers={"Cookie": stack.preview_session(sandbox_id)},
    )

    assert reply.status == status
    set_cookies = reply.headers.get_all("Set-Cookie") or []
    assert [c.split("=", 1)[0] for c in set_cookies] == [APP_COOKIE]
    assert reply.headers.get_all("Content-Security-Policy") == [
        "default-src 'self', frame-ancestors http://127.0.0.1:* http://localhost:*"
    ]
    assert reply.headers.get("X-Frame-Options") is None


@pytest.fixture(scope="module")
def declared_tenant(stack: LocalStack) -> dict[str, Any]:
    """A tenant whose previews only pages on http://127.0.0.1:<port> may frame (not localhost)."""
    operator(stack, "tenant", "create", "wayne")
    operator(stack, "sandbox", "put", "--tenant", "wayne", "sbx-wayne-1")
    key = operator(stack, "api-key", "create", "--tenant", "wayne")["api_key"]
    declared = operator(stack, "tenant", "frame-ancestors", "wayne", f"http://127.0.0.1:{stack.port}")
    assert declared["frame_ancestors"] == [f"http://127.0.0.1:{stack.port}"]
    return {"api_key": key, "sandbox_id": "sbx-wayne-1"}


def test_a_declared_origin_can_frame_the_preview(
    page: Page, stack: LocalStack, declared_tenant: dict[str, Any], artifacts: Path
) -> None:
    url = stack.mint(declared_tenant["api_key"], declared_tenant["sandbox_id"]).json()["url"]

    open_demo(page, stack)  # on http://127.0.0.1:<port>
    page.evaluate(SET_SRC, url)

    preview(page).locator(f"#sandbox-id:text-is('{declared_tenant['sandbox_id']}')").wait_for(
        timeout=TIMEOUT_MS
    )
    preview(page).locator("#check-xhr[data-loaded=true]").wait_for(timeout=TIMEOUT_MS)
    page.screenshot(path=artifacts / "f-declared-origin-frames-the-preview.png")


def test_a_page_on_an_undeclared_origin_cannot_frame_the_preview(
    page: Page, stack: LocalStack, declared_tenant: dict[str, Any], artifacts: Path
) -> None:
    url = stack.mint(declared_tenant["api_key"], declared_tenant["sandbox_id"]).json()["url"]
    refusals: list[str] = []

    def record(message: ConsoleMessage) -> None:
        if "frame-ancestors" in message.text:
            refusals.append(message.text)

    page.on("console", record)
    # The same demo page, served from http://localhost:<port>: an origin the tenant did not declare
    page.goto(f"http://localhost:{stack.port}/")
    page.locator("#mint-status[data-state=ok]").wait_for(timeout=TIMEOUT_MS)
    preview(page).locator("#check-xhr[data-loaded=true]").wait_for(timeout=TIMEOUT_MS)  # demo tenant: default
    with page.expect_console_message(lambda m: "frame-ancestors" in m.text, timeout=TIMEOUT_MS):
        page.evaluate(SET_SRC, url)

    assert any(f"http://127.0.0.1:{stack.port}" in text for text in refusals), refusals
    assert preview(page).locator("#sandbox-id").count() == 0
    page.screenshot(path=artifacts / "g-undeclared-origin-is-refused.png")
