"""The fleet ingress's Prometheus ``/metrics`` counts what a browser just did (issue 15, must show 2)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Response

from tests.e2e.local_stack import LocalStack, fetch

pytestmark = pytest.mark.e2e

TIMEOUT_MS = 30_000
_SAMPLE = re.compile(r'^preview_ingress_requests_total\{route="http",status="(\d+)"\} ([0-9.e+]+)$', re.M)


def http_requests_answered(stack: LocalStack, sandbox_id: str) -> dict[str, float]:
    """``preview_ingress_requests_total`` for HTTP, by status, from the sandbox's ingress."""
    port = stack.demo["ingress_admin_ports"][sandbox_id]
    scraped = fetch(f"http://127.0.0.1:{port}/metrics")
    assert scraped.status == 200
    return {status: float(value) for status, value in _SAMPLE.findall(scraped.text)}


def test_the_ingress_counts_every_request_of_a_page_chromium_loaded(page: Page, stack: LocalStack) -> None:
    sandbox_id = stack.demo["sandbox_id"]
    minted = stack.mint(stack.demo["api_key"], sandbox_id, {"scope": "read"})
    assert minted.status == 200, minted.text
    preview_host = urlsplit(minted.json()["url"]).hostname
    # The answers that came through the ingress: the preview host's, but not the exchange's (?mt=,
    # /__preview/...) nor the edge's denials, nor WebSocket upgrades (counted as streams).
    through_ingress: list[Response] = []

    def seen(response: Response) -> None:
        url = urlsplit(response.url)
        if (
            url.hostname == preview_host
            and "mt=" not in url.query
            and not url.path.startswith("/__preview/")
            and response.request.resource_type != "websocket"
        ):
            through_ingress.append(response)

    page.on("response", seen)
    before = http_requests_answered(stack, sandbox_id)

    page.goto(minted.json()["url"])
    page.locator("#check-xhr[data-loaded=true]").wait_for(timeout=TIMEOUT_MS)
    page.close()  # nothing more from this page

    after = http_requests_answered(stack, sandbox_id)
    counted = {status: after[status] - before.get(status, 0.0) for status in after}
    browser_saw: dict[str, float] = {}
    for response in through_ingress:
        browser_saw[str(response.status)] = browser_saw.get(str(response.status), 0.0) + 1
    assert through_ingress, "the page loaded nothing through the ingress"
    assert {status: n for status, n in counted.items() if n} == browser_saw
