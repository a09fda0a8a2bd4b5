"""Logs a person can read (issue 15): what ``make run`` prints, and the lines of each request."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.e2e.local_stack import LocalStack, fetch

pytestmark = pytest.mark.e2e

BANNER = "preview-local is running"


def function_lines(stack: LocalStack) -> list[dict[str, Any]]:
    """The functions' JSON log lines (stdout)."""
    lines = stack.stdout_path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def wait_for_line(stack: LocalStack, wanted: str) -> list[str]:
    deadline = time.monotonic() + 5
    while True:
        lines = stack.stderr_path.read_text(encoding="utf-8").splitlines()
        if any(wanted in line for line in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_make_run_prints_no_log_line_before_its_banner(stack: LocalStack) -> None:
    before, banner, _ = stack.stdout_path.read_text(encoding="utf-8").partition(BANNER)

    assert banner, "no banner"
    assert [line for line in before.splitlines() if line.startswith("{") or len(line) > 200] == []


# Which function writes each message (functions/*/): its lines must carry that function's name.
WRITER = {
    "preview token minted": "MintFunction",
    "preview session started": "ExchangeFunction",
    "preview exchange denied": "ExchangeFunction",
    "preview request denied": "PreviewAuthorizerFunction",
}


def test_authorizer_and_exchange_lines_carry_their_own_function_name(stack: LocalStack) -> None:
    stack.preview_session(stack.demo["sandbox_id"])  # mint, then the exchange
    fetch(f"{stack.preview_origin(stack.demo['sandbox_id'])}/?mt=mp_not-a-token")  # refused

    names: dict[str, set[str]] = {}
    for line in function_lines(stack):
        if line["message"] in WRITER:
            names.setdefault(line["message"], set()).add(line.get("function_name", "-"))

    assert {"preview token minted", "preview session started"} <= set(names)
    assert names == {message: {WRITER[message]} for message in names}


def test_a_refused_request_says_why_in_the_request_log(stack: LocalStack) -> None:
    host = f"{stack.demo['sandbox_id']}.{stack.demo['preview_domain']}:{stack.port}"
    reply = fetch(f"{stack.preview_origin(stack.demo['sandbox_id'])}/no-session-here")
    assert reply.status in (401, 403)

    lines = wait_for_line(stack, "/no-session-here")

    assert [line for line in lines if f"GET {host} /no-session-here -> {reply.status} no_token" in line]
