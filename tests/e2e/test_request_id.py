"""One request followed end to end (issue 15): CloudFront's ``X-Amz-Cf-Id``, which the viewer gets
back on every answer, is the ``request_id`` of the exchange's, the denial route's and the fleet
ingress's log line for that request. The local front door adds it as CloudFront does."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.e2e.local_stack import LocalStack, fetch

pytestmark = pytest.mark.e2e

INGRESS_PREFIX = "[ingress] "


def function_lines(stack: LocalStack) -> list[dict[str, Any]]:
    lines = stack.stdout_path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def ingress_lines(stack: LocalStack) -> list[dict[str, Any]]:
    lines = stack.stderr_path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line[len(INGRESS_PREFIX) :]) for line in lines if line.startswith(INGRESS_PREFIX)]


def lines_with(stack: LocalStack, request_id: str) -> list[dict[str, Any]]:
    """Every function and ingress line logging ``request_id`` (waits a little for the ingress's)."""
    deadline = time.monotonic() + 5
    while True:
        found = [
            line
            for line in [*function_lines(stack), *ingress_lines(stack)]
            if line.get("request_id") == request_id
        ]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_the_id_a_viewer_gets_back_names_the_exchange_denial_and_ingress_lines_of_its_requests(
    stack: LocalStack,
) -> None:
    sandbox = stack.demo["sandbox_id"]
    minted = stack.mint(stack.demo["api_key"], sandbox, {"scope": "read"})
    assert minted.status == 200, minted.text

    exchanged = fetch(minted.json()["url"])
    cookies = "; ".join(v.split(";", 1)[0] for v in exchanged.headers.get_all("Set-Cookie", []))
    page = fetch(f"{stack.preview_origin(sandbox)}/", headers={"Cookie": cookies})
    denied = fetch(f"{stack.preview_origin(sandbox)}/", headers={"X-Amz-Cf-Id": "forged-by-the-viewer"})

    ids = [str(reply.headers.get("X-Amz-Cf-Id", "")) for reply in (exchanged, page, denied)]
    assert (exchanged.status, page.status, denied.status) == (302, 200, 403)
    assert all(len(i) == 56 for i in ids), ids
    assert len(set(ids)) == 3, "one id per request"

    exchange_id, page_id, denied_id = ids
    assert [line["message"] for line in lines_with(stack, exchange_id)] == ["preview session started"]
    assert [(line["event"], line["status"]) for line in lines_with(stack, page_id)] == [("request", 200)]
    assert [line["message"] for line in lines_with(stack, denied_id)] == ["preview exchange denied"]
    assert lines_with(stack, "forged-by-the-viewer") == []
