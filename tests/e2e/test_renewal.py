"""Sessions outlive their tokens (issue 14): the shipped embed helper renews in place, in Chromium.

The embedding page is on another site than the preview (``127.0.0.1`` against
``*.sandboxes.localhost``): the example backend of docs/embed/ for the sandbox app, the demo page for
the desktop. Both load the helper as integrators do (versioned path, SRI). Every ``preview-*`` event
and every message the page receives is recorded, with the page's clock.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Response, Route

from tests.e2e.embed_backends import running_backend
from tests.e2e.embed_page import (
    TIMEOUT_MS,
    VISIBLE_FRAME,
    event_times,
    events,
    open_recorded_page,
    visible_frame,
    wait_for_events,
)
from tests.e2e.local_stack import LocalStack
from tests.e2e.test_browser import open_preview, preview
from tests.e2e.test_desktop import wait_for_changing_desktop

pytestmark = pytest.mark.e2e

TTL_SECONDS = 15
SAME_DOCUMENT_SECONDS = 60
MARKER = "window.__marker"
# Marks the first document of the frame; a reload (or a new frame) would lose it.
SET_MARKER = f"{MARKER} = 'set in the first document'"


@pytest.fixture(scope="module")
def backend(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_backend("python", stack, tmp_path_factory.mktemp("backend")) as url:
        yield url


def open_with(page: Page, url: str, attributes: dict[str, str]) -> None:
    """The example page, its <sandbox-preview> given ``attributes``, once that preview shows."""
    open_recorded_page(page, url)
    wait_for_events(page, "preview-ready", 1)
    page.evaluate(
        "(attributes) => { const p = document.getElementById('preview');"
        " for (const [name, value] of Object.entries(attributes)) p.setAttribute(name, value); p.reload(); }",
        attributes,
    )
    wait_for_events(page, "preview-ready", 2)
    frame = page.frame_locator(VISIBLE_FRAME)
    frame.locator("#check-xhr[data-loaded=true]").wait_for(timeout=TIMEOUT_MS)


def expires_at(page: Page) -> float:
    """The shown session's end (epoch seconds), as the helper knows it."""
    value: str = page.evaluate("document.getElementById('preview').expiresAt")
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def preview_responses(page: Page, stack: LocalStack, sandbox_id: str) -> list[tuple[str, int]]:
    """Every response from the preview's host, recorded from now on: (path, status)."""
    seen: list[tuple[str, int]] = []
    origin = stack.preview_origin(sandbox_id)

    def record(response: Response) -> None:
        if response.url.startswith(origin):
            seen.append((response.url[len(origin) :].split("?")[0], response.status))

    page.on("response", record)
    return seen


def type_key(page: Page, key: str, outcome: str, count: int) -> None:
    frame = page.frame_locator(VISIBLE_FRAME)
    frame.locator("#keys").press(key)
    frame.locator(f"#input-status[data-{outcome}='{count}']").wait_for(timeout=TIMEOUT_MS)


def test_for_60_s_the_same_document_keeps_working_across_15_s_tokens(
    page: Page, stack: LocalStack, backend: str, artifacts: Path
) -> None:
    sandbox_id = stack.demo["sandbox_ids"][0]
    open_with(page, backend, {"scope": "interact", "expires-in": str(TTL_SECONDS)})
    responses = preview_responses(page, stack, sandbox_id)
    visible_frame(page).evaluate(SET_MARKER)
    src = page.get_attribute(VISIBLE_FRAME, "src")
    first_end = expires_at(page)
    page.screenshot(path=artifacts / "renewal-timeline-0-start.png")

    typed, shots, started = "", 0, time.monotonic()
    while time.monotonic() - started < SAME_DOCUMENT_SECONDS:
        key = secrets.choice("abcdefghijklmnopqrstuvwxyz")
        typed += key
        type_key(page, key, "delivered", len(typed))
        renewed = len(events(page, "preview-renewed"))
        if renewed > shots:
            shots = renewed
            page.screenshot(path=artifacts / f"renewal-timeline-{shots}-renewed.png")
        page.wait_for_timeout(1500)
    page.screenshot(path=artifacts / "renewal-timeline-end.png")

    frame = visible_frame(page)
    assert frame.evaluate(MARKER) == "set in the first document", "the same document all along"
    assert frame.locator("#keys").input_value() == typed, "the form's state survived"
    assert page.get_attribute(VISIBLE_FRAME, "src") == src
    # A renewal may be in flight as the minute ends (its hidden frame then still there): once it is
    # done, no hidden renewal frame is left behind.
    page.wait_for_function(
        "() => ['preview-renewing', 'preview-renewed'].map("
        "(name) => window.__events.filter((e) => e.name === name).length).every((n, _, all) => n === all[0])",
        timeout=TIMEOUT_MS,
    )
    assert page.locator("#preview iframe").count() == 1, "no hidden renewal frame is left behind"
    # Every keystroke reached the sandbox, none was refused, across at least three token ends.
    assert frame.locator("#input-status").get_attribute("data-refused") is None
    assert typed in "".join(stack.origin_status(sandbox_id)["inputs"])
    assert time.time() > first_end + 2 * TTL_SECONDS
    renewed_events = events(page, "preview-renewed")
    assert len(renewed_events) >= 3
    assert [event["renewals"] for event in renewed_events] == list(range(1, len(renewed_events) + 1))
    # (one more renewal may be in flight as the minute ends)
    assert len(renewed_events) <= len(events(page, "preview-renewing")) <= len(renewed_events) + 1
    # No denial page ever showed, nothing expired, nothing failed.
    assert events(page, "preview-expired") == []
    assert events(page, "preview-failed") == []
    assert events(page, "preview-error") == []
    assert {m["type"] for m in events(page, "preview-message")} == {"preview.renewed"}
    assert [status for _, status in responses if status >= 400] == []
    renewal_pages = [
        path for path, status in responses if path == "/__preview/cookie-check/__preview/renewed"
    ]
    assert len(renewed_events) <= len(renewal_pages) <= len(renewed_events) + 1
    assert stack.origin_status(sandbox_id)["credential_seen"] is False


def test_the_desktops_stream_stays_open_across_renewed_token_ends(
    page: Page, stack: LocalStack, artifacts: Path
) -> None:
    page.goto(stack.demo["demo_url"])
    page.locator("#mint-status[data-state=ok]").wait_for(timeout=TIMEOUT_MS)
    open_preview(page, stack.demo["desktop_sandbox_id"], "read", TTL_SECONDS)
    frame = preview(page)
    frame.locator("#status[data-state=connected]").wait_for(timeout=TIMEOUT_MS)
    wait_for_changing_desktop(page, frame)
    document = visible_frame(page)
    document.evaluate(SET_MARKER)
    # The desktop page's connection states, stamped with the frame's clock (the same machine's).
    document.evaluate(
        "window.__states = []; new MutationObserver(() => window.__states.push("
        "{state: document.getElementById('status').dataset.state, at: Date.now()}))"
        ".observe(document.getElementById('status'), {attributes: true, attributeFilter: ['data-state']})"
    )
    ends = [expires_at(page)]
    page.wait_for_function("() => Number(document.getElementById('renewal-count').textContent) >= 1")
    ends.append(expires_at(page))
    # Two token ends: the first, then the first renewed one.
    time.sleep(max(0.0, ends[1] - time.time() + 2.5))
    wait_for_changing_desktop(page, frame)
    page.screenshot(path=artifacts / "renewal-desktop-after-two-token-ends.png")

    # The stream opened on the first token is the one still streaming: the fleet ingress kept it
    # open at each token's end (a renewal link), so noVNC never even had to reconnect.
    states: list[dict[str, Any]] = document.evaluate("window.__states")
    assert states == [], f"the desktop's connection changed state ({states})"
    assert frame.locator("#status").get_attribute("data-state") == "connected"
    assert document.evaluate(MARKER) == "set in the first document", "the same document all along"
    assert page.inner_text("#remint-count") == "0"


def test_a_hostile_sandbox_page_costs_at_most_one_extra_mint(
    page: Page, stack: LocalStack, backend: str, artifacts: Path
) -> None:
    open_with(page, backend, {"scope": "read", "expires-in": "600"})
    frame = visible_frame(page)
    frame.evaluate(SET_MARKER)
    mints_before = len(events(page, "preview-minted"))
    src = page.get_attribute(VISIBLE_FRAME, "src")

    # The sandbox's own page posts what only the data plane's pages should: 30 in 3 s.
    frame.evaluate(
        "() => new Promise((done) => { let sent = 0; const forge = setInterval(() => {"
        " parent.postMessage({type: sent % 2 ? 'preview.renewed' : 'preview.expired',"
        " sandbox_id: null, reason: 'expired', expires_at: 1}, '*');"
        " if (++sent === 30) { clearInterval(forge); done(); } }, 100); })"
    )
    page.wait_for_function(
        "() => window.__events.filter((e) => e.name === 'preview-message').length >= 30", timeout=TIMEOUT_MS
    )
    page.wait_for_timeout(1000)
    page.screenshot(path=artifacts / "renewal-hostile-page-ignored.png")

    assert len(events(page, "preview-minted")) - mints_before <= 1
    assert all(message["ignored"] for message in events(page, "preview-message"))
    assert events(page, "preview-expired") == []
    assert events(page, "preview-renewed") == []
    assert page.get_attribute(VISIBLE_FRAME, "src") == src
    assert visible_frame(page).evaluate(MARKER) == "set in the first document"


def test_with_renewal_off_the_first_refused_request_finds_preview_expired_raised_and_no_reload(
    page: Page, stack: LocalStack, backend: str, artifacts: Path
) -> None:
    sandbox_id = stack.demo["sandbox_ids"][0]
    open_with(page, backend, {"scope": "interact", "expires-in": "6", "renew": "off"})
    # The integrator takes over at expiry (no automatic re-mint): the frame stays as it is.
    page.evaluate(
        "document.getElementById('preview').addEventListener('preview-expired', (e) => e.preventDefault())"
    )
    frame = visible_frame(page)
    frame.evaluate(SET_MARKER)
    type_key(page, "a", "delivered", 1)
    responses = preview_responses(page, stack, sandbox_id)
    time.sleep(max(0.0, expires_at(page) - time.time() + 0.5))

    with page.expect_response(lambda r: r.url.startswith(stack.preview_origin(sandbox_id))) as refused:
        page.frame_locator(VISIBLE_FRAME).locator("#keys").press("b")
    refused_at = time.time() * 1000
    page.frame_locator(VISIBLE_FRAME).locator("#input-status[data-refused='1']").wait_for(timeout=TIMEOUT_MS)
    page.screenshot(path=artifacts / "renewal-off-expired.png")

    assert refused.value.status == 403
    assert [status for _, status in responses] == [403], "the first request after the end was refused"
    expired = event_times(page, "preview-expired")
    assert len(expired) == 1
    assert expired[0] <= refused_at
    assert events(page, "preview-expired")[0]["source"] == "clock"
    status = page.frame_locator(VISIBLE_FRAME).locator("#input-status")
    assert status.get_attribute("data-reason") == "expired"
    assert "session expired" in status.inner_text()
    assert visible_frame(page).evaluate(MARKER) == "set in the first document", "no reload"
    assert events(page, "preview-renewing") == []
    assert len(events(page, "preview-minted")) == 2, "the integrator cancelled the re-mint"


def test_with_renewal_off_the_helper_re_mints_at_the_end_and_no_denial_page_shows(
    page: Page, stack: LocalStack, backend: str
) -> None:
    open_with(page, backend, {"expires-in": "3", "renew": "off"})
    src = page.get_attribute(VISIBLE_FRAME, "src")
    wait_for_events(page, "preview-expired", 1)
    wait_for_events(page, "preview-ready", 3)

    assert page.evaluate("window.__afterExpired")[0] == {
        "frames": ["hidden"],
        "status": "Refreshing preview…",
    }
    assert events(page, "preview-ready")[-1]["renewal"] is True
    assert page.get_attribute(VISIBLE_FRAME, "src") != src
    assert events(page, "preview-renewing") == []


@pytest.mark.parametrize(
    ("status", "code"), [(403, "forbidden"), (404, "sandbox_not_found"), (0, "network_error")]
)
def test_a_failing_renewal_ends_with_the_denial_page_and_preview_failed_and_no_loop(
    page: Page, stack: LocalStack, backend: str, artifacts: Path, status: int, code: str
) -> None:
    open_with(
        page,
        backend,
        {"scope": "read", "expires-in": "8", "retry-delay": "200", "max-failures": "3"},
    )
    frame = visible_frame(page)
    frame.evaluate(SET_MARKER)
    calls: list[str] = []

    def refuse(route: Route) -> None:
        calls.append(route.request.method)
        if status == 0:
            route.abort("connectionrefused")
            return
        route.fulfill(
            status=status,
            content_type="application/json",
            body='{"error": {"code": "%s", "message": "refused by the test"}}' % code,  # noqa: UP031
        )

    page.route("**/my-backend/preview", refuse)
    wait_for_events(page, "preview-failed", 1)
    # Until its end the session still holds: the same document, still working.
    assert visible_frame(page).evaluate(MARKER) == "set in the first document"
    page.frame_locator(VISIBLE_FRAME).locator("h1:text-is('Preview session expired')").wait_for(
        timeout=TIMEOUT_MS
    )
    page.wait_for_timeout(3000)  # room for a loop to show itself
    page.screenshot(path=artifacts / f"renewal-failed-{code}.png")

    failed = events(page, "preview-failed")
    assert len(failed) == 1
    assert failed[0]["code"] == code
    assert failed[0]["status"] == status
    assert failed[0]["renewal"] is True
    assert len(calls) == 3, "three attempts with backoff, then no more"
    assert [e["code"] for e in events(page, "preview-error")] == [code] * 3
    assert events(page, "preview-renewed") == []
    assert events(page, "preview-expired") == []
    assert page.locator("#preview iframe").count() == 1


def test_a_tab_asleep_past_the_end_renews_on_waking_and_keeps_its_document(
    page: Page, stack: LocalStack, backend: str, artifacts: Path
) -> None:
    sandbox_id = stack.demo["sandbox_ids"][0]
    page.clock.install(time=datetime.now(UTC))  # the page's timers, ours to stop: a tab put to sleep
    open_with(page, backend, {"scope": "interact", "expires-in": "12", "renew-before": "3"})
    # Asleep: no timer of the page runs, past the session's end.
    # Half a second ahead of the page's clock (which runs on meanwhile; a busy machine takes tens of
    # ms between the two calls), far before the renewal is due (9 s in).
    page.clock.pause_at(page.evaluate("Date.now()") / 1000 + 0.5)  # seconds
    asleep_at = time.time()
    assert events(page, "preview-renewing") == [], "fell asleep before the renewal was due"
    visible_frame(page).evaluate(SET_MARKER)
    end = expires_at(page)
    time.sleep(max(0.0, end - time.time() + 1.5))
    page.screenshot(path=artifacts / "renewal-asleep-past-the-end.png")
    assert events(page, "preview-renewing") == [], "nothing ran while the tab slept"
    # Woken, as a laptop lid reopened: the clock jumps, every due timer fires once.
    page.clock.fast_forward(int((time.time() - asleep_at) * 1000))
    page.clock.resume()
    wait_for_events(page, "preview-renewed", 1)
    type_key(page, "w", "delivered", 1)
    page.screenshot(path=artifacts / "renewal-after-sleep.png")

    assert events(page, "preview-renewed")[0]["renewals"] == 1
    assert visible_frame(page).evaluate(MARKER) == "set in the first document", "no reload"
    assert events(page, "preview-failed") == []
    assert "w" in "".join(stack.origin_status(sandbox_id)["inputs"])
