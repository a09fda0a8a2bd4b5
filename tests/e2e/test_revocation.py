"""Revocation as a user sees it: an open preview in Chromium is refused within 5 s, four ways (by
the fleet ingress, which polls the revocation feed; the denial page is its own, styled).

Each test sets up its own tenant (operator CLI), so disabling or deleting never touches the
demo tenant other tests use. The embedding page is the demo page (its origin is a frame
ancestor), framing the tenant's preview; the preview then loses its access by: its token
revoked, its sandbox's tokens revoked, its sandbox deleted, its tenant disabled.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.e2e.local_stack import LocalStack, fetch
from tests.e2e.test_browser import TIMEOUT_MS, open_demo, preview, preview_frame, wait_for_sandbox
from tests.e2e.test_operator_cli import operator

pytestmark = pytest.mark.e2e

REVOCATION_DEADLINE_SECONDS = 5.0


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    api_key: str
    key_id: str
    sandbox_id: str
    other_sandbox_id: str


def new_tenant(stack: LocalStack) -> Tenant:
    suffix = secrets.token_hex(3)
    tenant_id = f"rv-{suffix}"
    operator(stack, "tenant", "create", tenant_id)
    created = operator(stack, "api-key", "create", "--tenant", tenant_id)
    for sandbox_id in (f"sbx-rv-{suffix}", f"sbx-rv-{suffix}-b"):
        operator(stack, "sandbox", "put", "--tenant", tenant_id, sandbox_id)
    return Tenant(tenant_id, created["api_key"], created["key_id"], f"sbx-rv-{suffix}", f"sbx-rv-{suffix}-b")


def session_cookie_for(stack: LocalStack, url: str) -> str:
    """Exchange a preview URL as a browser would; the cookies it sets (the session and its assertion)."""
    reply = fetch(url)
    assert reply.status == 302, reply.text
    return "; ".join(cookie.split(";", 1)[0] for cookie in reply.headers.get_all("Set-Cookie") or [])


def revoke_by_token(stack: LocalStack, tenant: Tenant, token: str) -> None:
    reply = fetch(
        f"{stack.api_url}/api/v1/preview-tokens/revoke",
        "POST",
        {"Authorization": f"Bearer {tenant.api_key}", "Content-Type": "application/json"},
        json.dumps({"token": token}).encode(),
    )
    assert (reply.status, reply.json()) == (200, {})


def revoke_by_sandbox(stack: LocalStack, tenant: Tenant, token: str) -> None:
    reply = fetch(
        f"{stack.api_url}/api/v1/sandboxes/{tenant.sandbox_id}/preview-tokens",
        "DELETE",
        {"Authorization": f"Bearer {tenant.api_key}"},
    )
    assert reply.status == 204, reply.text


def delete_sandbox(stack: LocalStack, tenant: Tenant, token: str) -> None:
    operator(stack, "sandbox", "delete", "--tenant", tenant.tenant_id, tenant.sandbox_id)


def disable_tenant(stack: LocalStack, tenant: Tenant, token: str) -> None:
    operator(stack, "tenant", "disable", tenant.tenant_id)


WAYS: dict[str, Callable[[LocalStack, Tenant, str], None]] = {
    "by-token": revoke_by_token,
    "by-sandbox": revoke_by_sandbox,
    "sandbox-deleted": delete_sandbox,
    "tenant-disabled": disable_tenant,
}


def frame_request_status(page: Page) -> int:
    """What the open iframe's next request (an XHR of the sandbox app) gets."""
    status: int = preview_frame(page).evaluate("fetch('/api/status').then(r => r.status)")
    return status


@pytest.mark.parametrize("way", list(WAYS))
def test_revoking_an_open_preview_refuses_its_next_request_within_5_s(
    page: Page, stack: LocalStack, artifacts: Path, way: str
) -> None:
    # Given a tenant's preview open in an iframe of the embedding page
    tenant = new_tenant(stack)
    minted = stack.mint(tenant.api_key, tenant.sandbox_id).json()
    untouched_sandbox = stack.demo["sandbox_id"] if way == "tenant-disabled" else tenant.other_sandbox_id
    untouched_key = stack.demo["api_key"] if way == "tenant-disabled" else tenant.api_key
    untouched = stack.mint(untouched_key, untouched_sandbox).json()
    untouched_cookie = session_cookie_for(stack, untouched["url"])
    open_demo(page, stack)
    # what the frame posts to the parent (the demo's embed helper listens to its own sandbox only)
    page.evaluate(
        "window.__previewMessages = [];"
        "window.addEventListener('message', e => window.__previewMessages.push(e.data))"
    )
    # the embed helper's visible frame, pointed at this tenant's preview
    page.evaluate(
        "url => { document.getElementById('preview').shadowRoot"
        ".querySelector('iframe[data-state=visible]').src = url; }",
        minted["url"],
    )
    wait_for_sandbox(page, tenant.sandbox_id, "read")
    assert frame_request_status(page) == 200

    # When it is revoked
    WAYS[way](stack, tenant, minted["token"])
    revoked_at = time.monotonic()

    # Then the open iframe's next request is refused within 5 s
    status = frame_request_status(page)
    while status == 200 and time.monotonic() - revoked_at < REVOCATION_DEADLINE_SECONDS:
        time.sleep(0.1)
        status = frame_request_status(page)
    assert status == 403, f"still {status} {time.monotonic() - revoked_at:.1f} s after the revocation"
    if way == "by-token":
        # The sandbox page says why its input is refused: revoked (not view-only, not expired).
        preview(page).locator("#keys").press("r")
        preview(page).locator("#input-status[data-refused='1']").wait_for(timeout=TIMEOUT_MS)
        assert preview(page).locator("#input-status").get_attribute("data-reason") == "revoked"

    # And the frame shows the denial page, and the parent receives preview.denied / revoked
    preview_frame(page).evaluate("location.reload()")
    preview(page).locator("h1:text-is('Preview revoked')").wait_for(timeout=TIMEOUT_MS)
    expected = {"type": "preview.denied", "sandbox_id": tenant.sandbox_id, "reason": "revoked"}
    page.wait_for_function(
        "expected => (window.__previewMessages || []).some("
        "m => m && m.type === expected.type && m.sandbox_id === expected.sandbox_id"
        " && m.reason === expected.reason)",
        arg=expected,
        timeout=TIMEOUT_MS,
    )
    assert page.inner_text("#remint-count") == "0"
    page.screenshot(path=artifacts / f"f-revoked-{way}.png")

    # And another sandbox's preview is untouched
    other = fetch(f"{stack.preview_origin(untouched_sandbox)}/", headers={"Cookie": untouched_cookie})
    assert other.status == 200, other.text
