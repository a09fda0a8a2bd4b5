"""End-to-end fixtures: one local stack per session, Debian's chromium driven by Playwright."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from preview_local.cfn_template import PROJECT_ROOT
from preview_tokens.data_plane.access import SESSION_COOKIE

from tests.e2e.local_stack import LocalStack

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
# A preview token, or an API key, as it would appear in a log line.
_CREDENTIAL = re.compile(r"mp_eyJ|msk_[A-Za-z0-9_-]{8}|" + re.escape(SESSION_COOKIE) + "=")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    running = LocalStack.start(tmp_path_factory.mktemp("preview-local"))
    yield running
    exit_code = running.stop()
    assert exit_code == 0, f"preview-local did not stop cleanly ({exit_code}):\n{running.output()}"
    leaked = [line for line in _log_lines(running) if _CREDENTIAL.search(line)]
    assert leaked == [], "credentials in the stack's log lines"


def _log_lines(stack: LocalStack) -> list[str]:
    """The request log and the functions' log lines; the start-up banner is not a log."""
    lines = stack.stderr_path.read_text(encoding="utf-8").splitlines()
    lines += [
        line for line in stack.stdout_path.read_text(encoding="utf-8").splitlines() if line.startswith("{")
    ]
    assert any(line.startswith("[gateway]") for line in lines), "the request log is empty"
    return lines


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make chromium` installs Debian's chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser profile per test: no cookies carried over."""
    context = browser.new_context(viewport={"width": 1100, "height": 820})
    opened = context.new_page()
    yield opened
    context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
