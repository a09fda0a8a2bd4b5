"""A real app's page load through the whole local stack, as a ratio to the app direct (same run).

Run with ``make bench`` (``python -m bench.apps_bench``; ``make real-apps`` installs the app). The
Vite 8 + React app of tests/apps/vite-react runs as a developer runs it (``vite``, dev server, no
build), once as itself on loopback and once as sandbox ``sbx-vite`` of a local stack
(``PREVIEW_LOCAL_APPS``): front door (the local CloudFront) -> PreviewEdge -> fleet ingress -> Vite.
Debian's chromium loads the page ``ROUNDS`` times each way, interleaved, with the browser cache off
(every module of the dev server is fetched again: ~20 requests and Vite's HMR WebSocket per load),
until React has rendered the counter. The preview's session is exchanged once, before timing, as a
viewer's frame does; the loads after it carry the cookies. Medians; the script reports, it does not fail.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.local_stack import LocalStack
from tests.e2e.real_apps import missing_installs, vite_app

TARGET_PREVIEW_VS_DIRECT = 1.5
ROUNDS = 15
WARMUP = 3
SANDBOX = "sbx-vite"
LOAD_TIMEOUT_MS = 60_000


def _load(page: Page, url: str) -> float:
    """Seconds from navigation start until React rendered the counter; also counts the requests."""
    started = time.perf_counter()
    page.goto(url, wait_until="commit", timeout=LOAD_TIMEOUT_MS)
    page.locator("#counter").wait_for(timeout=LOAD_TIMEOUT_MS)
    return time.perf_counter() - started


def _uncached_page(page: Page) -> Page:
    session = page.context.new_cdp_session(page)
    session.send("Network.setCacheDisabled", {"cacheDisabled": True})
    return page


def main() -> int:
    missing = missing_installs()
    if missing:
        print(f"apps bench: not installed ({', '.join(missing)}); run `make real-apps`")
        return 1
    if not CHROMIUM.exists():
        print(f"apps bench: {CHROMIUM} is missing; run `make chromium`")
        return 1
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="apps-bench-") as scratch:
        workdir = Path(scratch)
        with vite_app(workdir, workdir) as vite:
            (workdir / "stack").mkdir()
            stack = LocalStack.start(workdir / "stack", apps={SANDBOX: vite.url})
            try:
                direct_times, preview_times, requests = _measure(stack, vite.url)
            finally:
                stack.stop()
    direct = statistics.median(direct_times)
    preview = statistics.median(preview_times)
    ratio = preview / direct
    verdict = "PASS" if ratio <= TARGET_PREVIEW_VS_DIRECT else "MISS"
    print()
    print(
        f"Real app benchmark: Vite 8 + React dev server, chromium, {ROUNDS} loads each, {os.cpu_count()} CPUs"
    )
    print(f"{'measure':<44} {'median':>9}   {'baseline (same run)':<40} {'ratio':>6}  {'target':>7}  result")
    print("-" * 120)
    baseline = f"the app direct: {direct * 1000:.0f} ms"
    print(
        f"{'page load through the local stack':<44} {preview * 1000:>6.0f} ms   {baseline:<40} "
        f"{ratio:5.2f}x  ≤{TARGET_PREVIEW_VS_DIRECT:4.1f}x   {verdict}"
    )
    print("-" * 120)
    print(f"requests per load: {requests} (document, Vite client, React Refresh, modules, deps), 1 WebSocket")
    print(f"whole run {time.monotonic() - started:.1f} s")
    return 0


def _measure(stack: LocalStack, direct_url: str) -> tuple[list[float], list[float], int]:
    minted = stack.mint(stack.demo["api_key"], SANDBOX, {"scope": "read"})
    assert minted.status == 200, minted.text
    preview_url = stack.preview_origin(SANDBOX) + "/"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            direct_page = _uncached_page(browser.new_context().new_page())
            preview_page = _uncached_page(browser.new_context().new_page())
            preview_page.goto(minted.json()["url"], timeout=LOAD_TIMEOUT_MS)  # the exchange sets the cookies
            preview_page.locator("#counter").wait_for(timeout=LOAD_TIMEOUT_MS)
            seen: list[str] = []
            preview_page.on("request", lambda request: seen.append(request.url))
            direct_times: list[float] = []
            preview_times: list[float] = []
            for round_number in range(WARMUP + ROUNDS):
                seen.clear()
                pair = [
                    (direct_page, direct_url + "/", direct_times),
                    (preview_page, preview_url, preview_times),
                ]
                for page, url, times in pair if round_number % 2 else reversed(pair):
                    elapsed = _load(page, url)
                    if round_number >= WARMUP:
                        times.append(elapsed)
            requests = len(seen)
        finally:
            browser.close()
    return direct_times, preview_times, requests


if __name__ == "__main__":
    sys.exit(main())
