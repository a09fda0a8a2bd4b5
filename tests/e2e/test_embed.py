"""The embed helper (docs/embed/preview-embed.js) in Debian's chromium, on the example backends' page.

The page is what an integrator ships: the helper, one ``<sandbox-preview>`` and a backend that
mints with the API key (Python and Node examples of docs/embed/, run as their README says).
Every ``preview-*`` event the element raises and every ``message`` the page receives is
recorded from before the page's own scripts run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, Route

from tests.e2e.embed_backends import running_backend
from tests.e2e.embed_page import (
    TIMEOUT_MS,
    VISIBLE_FRAME,
    events,
    open_embedding_page,
    visible_frame,
    wait_for_events,
    wait_for_sandbox,
)
from tests.e2e.local_stack import LocalStack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=["python", "node"])
def backend(
    request: pytest.FixtureRequest, stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """(kind, base URL) of each example backend."""
    with running_backend(request.param, stack, tmp_path_factory.mktemp("backend")) as url:
        yield request.param, url


@pytest.fixture(scope="module")
def python_backend(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_backend("python", stack, tmp_path_factory.mktemp("backend")) as url:
        yield url


def test_a_page_with_only_the_helper_and_the_example_backend_shows_the_preview(
    page: Page, stack: LocalStack, backend: tuple[str, str], artifacts: Path
) -> None:
    kind, url = backend
    sandbox_id = stack.demo["sandbox_ids"][0]
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    open_embedding_page(page, url)
    wait_for_sandbox(page, sandbox_id)

    frame = page.locator(VISIBLE_FRAME)
    assert visible_frame(page).url == stack.preview_origin(sandbox_id) + "/"
    assert frame.get_attribute("sandbox") == (
        "allow-scripts allow-same-origin allow-forms allow-popups allow-popups-to-escape-sandbox "
        "allow-modals allow-downloads"
    )
    assert "clipboard-write" in (frame.get_attribute("allow") or "")
    assert events(page, "preview-minted")[0]["scope"] == "read"
    assert events(page, "preview-error") == []
    assert stack.origin_status(sandbox_id)["credential_seen"] is False
    assert not [error for error in errors if "Content Security Policy" in error], errors
    page.screenshot(path=artifacts / f"embed-example-{kind}-backend.png")


def test_after_a_short_ttl_the_helper_re_mints_and_no_denial_page_stays_visible(
    page: Page, stack: LocalStack, python_backend: str, artifacts: Path
) -> None:
    """With renewal off (the 1.0 behaviour): at the end the helper re-mints and swaps a new document."""
    sandbox_id = stack.demo["sandbox_ids"][0]
    open_embedding_page(page, python_backend)
    page.evaluate(
        "() => { const p = document.getElementById('preview');"
        " p.setAttribute('renew', 'off'); p.setAttribute('expires-in', '3'); }"
    )
    wait_for_events(page, "preview-ready", 2)
    # At once: the 3 s session ends 2 s after it shows (the helper's 1 s lead), and on a loaded
    # machine waiting for the sandbox's page first could read the re-minted frame's src instead.
    first_src = page.get_attribute(VISIBLE_FRAME, "src")
    wait_for_sandbox(page, sandbox_id)
    page.screenshot(path=artifacts / "embed-renewal-1-shown.png")

    wait_for_events(page, "preview-expired", 1)
    # One re-mint is what this test looks at: the page cancels the next ends (renewal is off).
    page.evaluate(
        "document.getElementById('preview').addEventListener('preview-expired', (e) => e.preventDefault())"
    )
    page.screenshot(path=artifacts / "embed-renewal-2-re-minting.png")
    wait_for_events(page, "preview-ready", 3)
    wait_for_sandbox(page, sandbox_id)
    page.screenshot(path=artifacts / "embed-renewal-3-renewed.png")

    # The helper noticed the end by its own clock: no denial page had to tell it.
    assert events(page, "preview-expired")[0]["source"] == "clock"
    # The moment the end was handled, the frame was already hidden.
    assert page.evaluate("window.__afterExpired")[0] == {
        "frames": ["hidden"],
        "status": "Refreshing preview…",
    }
    assert events(page, "preview-ready")[-1]["renewal"] is True
    assert page.locator("#preview iframe").count() == 1, "the expired frame is gone"
    assert page.get_attribute(VISIBLE_FRAME, "src") != first_src
    assert events(page, "preview-failed") == []


def test_messages_from_another_origin_or_another_window_are_ignored(
    page: Page, stack: LocalStack, python_backend: str
) -> None:
    sandbox_id, other_sandbox_id = stack.demo["sandbox_ids"][:2]
    open_embedding_page(page, python_backend)
    wait_for_sandbox(page, sandbox_id)
    src = page.get_attribute(VISIBLE_FRAME, "src")
    forged = "parent.postMessage({type: 'preview.expired', sandbox_id: null, reason: 'expired'}, '*')"
    add_frame = (
        "([id, url]) => { const f = document.createElement('iframe');"
        " f.id = id; f.src = url; document.body.append(f); }"
    )

    # Another sandbox's origin: its own denial page posts preview.denied, then it forges expired.
    page.evaluate(add_frame, ["foreign", stack.preview_origin(other_sandbox_id) + "/"])
    page.frame_locator("#foreign").locator("h1:text-is('Preview link invalid')").wait_for(timeout=TIMEOUT_MS)
    visible_frame(page, "#foreign").evaluate(forged)
    # The preview's own origin, but not the frame the helper shows.
    page.evaluate(add_frame, ["sibling", stack.preview_origin(sandbox_id) + "/"])
    page.frame_locator("#sibling").locator(f"#sandbox-id:text-is('{sandbox_id}')").wait_for(
        timeout=TIMEOUT_MS
    )
    visible_frame(page, "#sibling").evaluate(forged)
    # The embedding page itself.
    page.evaluate(forged.replace("parent.", "window."))
    page.wait_for_function(
        "() => window.__messages.filter((m) => m.data && m.data.type === 'preview.expired').length >= 3",
        timeout=TIMEOUT_MS,
    )
    # Then one message from the frame it does show: the only one the helper takes.
    visible_frame(page).evaluate(
        "parent.postMessage({type: 'preview.denied', sandbox_id: null, reason: 'read_only'}, '*')"
    )
    wait_for_events(page, "preview-denied", 1)

    assert [message["reason"] for message in events(page, "preview-message")] == ["read_only"]
    assert events(page, "preview-expired") == []
    assert len(events(page, "preview-minted")) == 1
    assert page.get_attribute(VISIBLE_FRAME, "src") == src
    origins = {message["origin"] for message in page.evaluate("window.__messages")}
    assert stack.preview_origin(other_sandbox_id) in origins  # the foreign messages did arrive


@pytest.mark.parametrize(
    ("status", "code", "attempts"), [(503, "unavailable", 3), (404, "sandbox_not_found", 1)]
)
def test_failed_mints_are_retried_up_to_max_failures_then_the_helper_stops_and_says_so(
    page: Page, python_backend: str, status: int, code: str, attempts: int
) -> None:
    open_embedding_page(page, python_backend)
    calls: list[str] = []

    def refuse(route: Route) -> None:
        calls.append(route.request.method)
        route.fulfill(
            status=status,
            content_type="application/json",
            body='{"error": {"code": "%s", "message": "refused by the test"}}' % code,  # noqa: UP031
        )

    page.route("**/my-backend/preview", refuse)
    page.evaluate(
        "() => { const p = document.getElementById('preview');"
        " p.setAttribute('max-failures', '3'); p.setAttribute('retry-delay', '20'); p.reload(); }"
    )
    wait_for_events(page, "preview-failed", 1)

    failed = events(page, "preview-failed")
    assert failed == [
        {"status": status, "code": code, "message": "refused by the test", "failures": attempts}
    ]
    assert len(calls) == attempts
    assert len(events(page, "preview-error")) == attempts
    assert page.locator("#preview iframe").count() == 0
    assert page.locator("#preview .status").inner_text() == "The preview could not be opened."
