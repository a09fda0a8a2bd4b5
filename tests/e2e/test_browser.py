"""The demo embedding page in Debian's chromium: previews in an iframe, as an integrator ships them.

Each test leaves a screenshot in ``test-artifacts/``. The interact test also refreshes
``docs/demo.png`` (the README's picture) when it is missing or ``UPDATE_DEMO_PNG=1``.
"""

from __future__ import annotations

import os
import secrets
import time
from datetime import datetime
from pathlib import Path

import pytest
from playwright.sync_api import Frame, FrameLocator, Page
from preview_local.cfn_template import PROJECT_ROOT

from tests.e2e.local_stack import LocalStack

pytestmark = pytest.mark.e2e

DEMO_PNG = PROJECT_ROOT / "docs" / "demo.png"
TIMEOUT_MS = 30_000  # a wait, not a speed check: generous for a loaded 2-core machine


# The frame the embed helper (<sandbox-preview id="preview">) shows; Playwright's CSS pierces its
# open shadow root. While a renewal loads, a second, hidden frame exists beside it.
VISIBLE_FRAME = "#preview iframe[data-state=visible]"
VISIBLE_FRAME_JS = "document.getElementById('preview').shadowRoot.querySelector('iframe[data-state=visible]')"


def preview(page: Page) -> FrameLocator:
    return page.frame_locator(VISIBLE_FRAME)


def preview_frame(page: Page) -> Frame:
    handle = page.locator(VISIBLE_FRAME).element_handle()
    assert handle is not None
    frame = handle.content_frame()
    assert frame is not None
    return frame


def open_demo(page: Page, stack: LocalStack) -> None:
    """The demo page, once its first preview (the default sandbox, read) is showing."""
    page.goto(stack.demo["demo_url"])
    page.locator("#mint-status[data-state=ok]").wait_for(timeout=TIMEOUT_MS)
    preview(page).locator("#check-xhr[data-loaded=true]").wait_for(timeout=TIMEOUT_MS)


def open_preview(page: Page, sandbox_id: str, scope: str, ttl_seconds: int, renew: str = "auto") -> None:
    """Ask the demo page for a new preview and wait for its backend's answer."""
    page.select_option("#sandbox", sandbox_id)
    page.select_option("#renew", renew)
    page.check(f"input[name=scope][value={scope}]")
    page.fill("#expires-in", str(ttl_seconds))
    page.evaluate("document.getElementById('mint-status').dataset.state = 'idle'")
    shown_before = visible_src(page)
    page.click("#open-preview")
    page.locator("#mint-status[data-state=ok], #mint-status[data-state=error]").wait_for(timeout=TIMEOUT_MS)
    if page.get_attribute("#mint-status", "data-state") == "ok":  # then wait until the helper swapped
        page.wait_for_function(
            f"before => {{ const f = {VISIBLE_FRAME_JS}; return f !== null && f.src !== before; }}",
            arg=shown_before,
            timeout=TIMEOUT_MS,
        )


def visible_src(page: Page) -> str | None:
    src: str | None = page.evaluate(f"(() => {{ const f = {VISIBLE_FRAME_JS}; return f && f.src; }})()")
    return src


def wait_for_sandbox(page: Page, sandbox_id: str, scope: str) -> None:
    """The iframe shows the sandbox app with its stylesheet, script and XHR all loaded."""
    frame = preview(page)
    frame.locator(f"#sandbox-id:text-is('{sandbox_id}')").wait_for(timeout=TIMEOUT_MS)
    frame.locator(f"#scope:text-is('{scope}')").wait_for(timeout=TIMEOUT_MS)
    frame.locator("#check-script[data-loaded=true]").wait_for(timeout=TIMEOUT_MS)
    frame.locator("#check-xhr[data-loaded=true]").wait_for(timeout=TIMEOUT_MS)
    assert frame.locator("#check-stylesheet .done").is_visible()
    assert frame.locator("#credential-seen").inner_text() == "never"


def type_into_sandbox(page: Page, text: str, outcome: str) -> None:
    """Type ``text`` in the sandbox's box and wait until every keystroke was ``outcome``."""
    frame = preview(page)
    frame.locator("#keys").press_sequentially(text)
    frame.locator(f"#input-status[data-{outcome}='{len(text)}']").wait_for(timeout=TIMEOUT_MS)


def test_read_preview_shows_the_sandbox_with_its_assets_and_refuses_input(
    page: Page, stack: LocalStack, artifacts: Path
) -> None:
    sandbox_id = stack.demo["sandbox_id"]
    typed = "read" + secrets.token_hex(3)

    open_demo(page, stack)
    wait_for_sandbox(page, sandbox_id, "read")
    type_into_sandbox(page, typed, "refused")

    assert preview_frame(page).url == stack.preview_origin(sandbox_id) + "/"
    assert "mt=" not in preview_frame(page).url
    assert typed not in preview(page).locator("#received").inner_text()
    assert typed not in "".join(stack.origin_status(sandbox_id)["inputs"])
    # The sandbox page says why: view-only (not "expired", not "revoked").
    assert preview(page).locator("#input-status").get_attribute("data-reason") == "read_only"
    assert "view-only" in preview(page).locator("#input-status").inner_text()
    page.screenshot(path=artifacts / "a-read-preview.png")


def test_read_mode_does_not_show_input_from_an_earlier_session(page: Page, stack: LocalStack) -> None:
    sandbox_id = stack.demo["sandbox_id"]
    typed = "earlier" + secrets.token_hex(3)
    open_demo(page, stack)
    open_preview(page, sandbox_id, "interact", 3600)
    wait_for_sandbox(page, sandbox_id, "interact")
    type_into_sandbox(page, typed, "delivered")

    open_preview(page, sandbox_id, "read", 3600)
    wait_for_sandbox(page, sandbox_id, "read")

    assert typed in "".join(stack.origin_status(sandbox_id)["inputs"]), "the sandbox did receive it"
    assert typed not in preview(page).locator("#received").inner_text()


def test_interact_preview_forwards_typing_to_the_sandbox(
    page: Page, stack: LocalStack, artifacts: Path
) -> None:
    sandbox_id = stack.demo["sandbox_id"]
    typed = "hello" + secrets.token_hex(2)

    open_demo(page, stack)
    open_preview(page, sandbox_id, "interact", 3600)
    wait_for_sandbox(page, sandbox_id, "interact")
    type_into_sandbox(page, typed, "delivered")

    assert typed in preview(page).locator("#received").inner_text()
    assert typed in "".join(stack.origin_status(sandbox_id)["inputs"])
    assert stack.origin_status(sandbox_id)["credential_seen"] is False
    page.screenshot(path=artifacts / "b-interact-preview.png")
    if not DEMO_PNG.exists() or os.environ.get("UPDATE_DEMO_PNG") == "1":
        page.locator("body").screenshot(path=DEMO_PNG)


def test_an_expired_preview_shows_the_denied_page_and_the_parent_re_mints(
    page: Page, stack: LocalStack, artifacts: Path
) -> None:
    sandbox_id = stack.demo["sandbox_id"]
    open_demo(page, stack)
    # Renewal off: the helper does not renew ahead of the end (with it, no page ever expires),
    # and the page cancels its automatic re-mint: the frame's next navigation shows the denial page.
    page.evaluate(
        "document.getElementById('preview').addEventListener('preview-expired', (e) => {"
        " if (!window.__cancelled) { window.__cancelled = true; e.preventDefault(); } })"
    )
    open_preview(page, sandbox_id, "read", 4, renew="off")
    wait_for_sandbox(page, sandbox_id, "read")
    first_url = page.get_attribute(VISIBLE_FRAME, "src")
    expires_at = datetime.fromisoformat(page.inner_text("#expires-at").replace("Z", "+00:00")).timestamp()
    time.sleep(max(0.0, expires_at - time.time() + 0.5))
    page.locator("#remint-count:text-is('1')").wait_for(timeout=TIMEOUT_MS)

    with page.expect_response(
        lambda response: response.url.startswith(stack.preview_origin(sandbox_id))
    ) as denied:
        preview_frame(page).evaluate("location.reload()")

    assert denied.value.status == 403
    assert "Preview session expired" in denied.value.text()
    assert '"type":"preview.expired"' in page.inner_text("#message-log")
    # The page's own "re-mint" (its reload()), as an integrator that cancelled would do it.
    page.evaluate("document.getElementById('preview').reload()")
    # Around expiry the browser drops the session cookie (its Max-Age is the token's life): then
    # only the session-ends marker says "expired", and it proves no sandbox (null); while the
    # expired token is still sent, its signature proves the sandbox. Either way: expired.
    assert any(
        f'"sandbox_id":{proven}' in page.inner_text("#message-log") for proven in ("null", f'"{sandbox_id}"')
    )
    wait_for_sandbox(page, sandbox_id, "read")
    assert page.get_attribute(VISIBLE_FRAME, "src") != first_url
    assert page.locator("#preview iframe").count() == 1, "the expired frame is gone"
    page.screenshot(path=artifacts / "c-expired-and-re-minted.png")
    # The same expired link opened on its own: the page an expired iframe shows.
    expired = page.context.new_page()
    expired.goto(str(first_url))
    assert expired.locator("h1").inner_text() == "Preview session expired"
    expired.screenshot(path=artifacts / "c-expired-page.png")


def test_a_preview_is_bound_to_its_sandbox_host(page: Page, stack: LocalStack, artifacts: Path) -> None:
    sandbox_id, other_sandbox_id = stack.demo["sandbox_ids"][:2]
    open_demo(page, stack)  # a session cookie for the first sandbox now exists in this browser
    token = stack.mint(stack.demo["api_key"], sandbox_id).json()["token"]
    other = page.context.new_page()
    loads_before = stack.origin_status(other_sandbox_id)["page_loads"]  # other tests' loads

    other.goto(f"{stack.preview_origin(other_sandbox_id)}/")
    assert other.locator("h1").inner_text() == "Preview link invalid"

    other.goto(f"{stack.preview_origin(other_sandbox_id)}/?mt={token}")
    other.locator("text=This preview link is for a different sandbox.").wait_for(timeout=TIMEOUT_MS)

    assert page.inner_text("#remint-count") == "0"
    assert stack.origin_status(other_sandbox_id)["page_loads"] == loads_before
    other.screenshot(path=artifacts / "d-token-on-another-sandbox.png")


def test_the_demo_backend_cannot_mint_for_another_tenants_sandbox(
    page: Page, stack: LocalStack, artifacts: Path
) -> None:
    open_demo(page, stack)
    open_preview(page, stack.demo["other_tenant_sandbox_id"], "read", 600)

    status = page.locator("#mint-status")
    assert status.get_attribute("data-code") == "404"
    assert "sandbox_not_found" in status.inner_text()
    assert page.locator("#preview iframe").count() == 0, "nothing framed: not the previous sandbox either"
    page.screenshot(path=artifacts / "e-other-tenant-refused.png")
