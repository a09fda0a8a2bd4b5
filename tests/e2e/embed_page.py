"""The embed helper's page as the browser tests drive it: its events recorded, its frames found."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Frame, Page

TIMEOUT_MS = 30_000  # a wait, not a speed check: generous for a loaded 2-core machine
VISIBLE_FRAME = "#preview iframe[data-state=visible]"
EVENT_NAMES = (
    "preview-minted",
    "preview-ready",
    "preview-expired",
    "preview-denied",
    "preview-cookies-blocked",
    "preview-unavailable",
    "preview-failed",
    "preview-error",
    "preview-message",
    "preview-renewing",
    "preview-renewed",
)
# Records the element's events (and, right after preview-expired has been handled, what its frames
# look like) and every message the page receives.
RECORDER = """
window.__events = []; window.__messages = []; window.__afterExpired = [];
window.addEventListener('message', (e) => window.__messages.push({origin: e.origin, data: e.data}));
for (const name of %s) {
  document.addEventListener(name, (event) => {
    window.__events.push({name: name, detail: event.detail, at: Date.now()});
    if (name === 'preview-expired') {
      const root = event.target.shadowRoot;
      queueMicrotask(() => window.__afterExpired.push({
        frames: [...root.querySelectorAll('iframe')].map((f) => f.dataset.state),
        status: root.querySelector('.status').hidden ? '' : root.querySelector('.status').textContent,
      }));
    }
  }, true);
}
""" % list(EVENT_NAMES)  # noqa: UP031 - a JS template with braces


def events(page: Page, name: str) -> list[dict[str, Any]]:
    recorded: list[dict[str, Any]] = page.evaluate("window.__events")
    return [event["detail"] for event in recorded if event["name"] == name]


def event_times(page: Page, name: str) -> list[int]:
    """When (the page's Date.now(), ms) each ``name`` event was raised."""
    recorded: list[dict[str, Any]] = page.evaluate("window.__events")
    return [int(event["at"]) for event in recorded if event["name"] == name]


def wait_for_events(page: Page, name: str, count: int) -> None:
    page.wait_for_function(
        "([name, count]) => window.__events.filter((e) => e.name === name).length >= count",
        arg=[name, count],
        timeout=TIMEOUT_MS,
    )


def visible_frame(page: Page, selector: str = VISIBLE_FRAME) -> Frame:
    handle = page.locator(selector).element_handle()
    assert handle is not None
    frame = handle.content_frame()
    assert frame is not None
    return frame


def open_recorded_page(page: Page, url: str) -> None:
    """Open ``url`` with the recorder installed before the page's own scripts."""
    page.add_init_script(RECORDER)
    page.goto(url)


def open_embedding_page(page: Page, url: str) -> None:
    """Open ``url`` and wait until the helper shows its first preview."""
    open_recorded_page(page, url)
    wait_for_events(page, "preview-ready", 1)


def wait_for_sandbox(page: Page, sandbox_id: str) -> None:
    frame = page.frame_locator(VISIBLE_FRAME)
    frame.locator(f"#sandbox-id:text-is('{sandbox_id}')").wait_for(timeout=TIMEOUT_MS)
    frame.locator("#check-xhr[data-loaded=true]").wait_for(timeout=TIMEOUT_MS)
