"""``preview-tokens smoke --demo .local/demo.json`` against the local stack, as an operator runs it.

It passes against the running stack; on a stack broken on purpose (its only signing key retired;
its origin down) it fails with one clear line naming the check, and still revokes what it minted.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from preview_local.moto_aws import patched_environ

from tests.e2e.local_stack import LocalStack, fetch, free_port
from tests.e2e.test_operator_cli import operator

pytestmark = pytest.mark.e2e

CLI = Path(sys.executable).with_name("preview-tokens")
CHECKS = ["mint", "exchange", "page", "websocket", "origin assertion", "denial page", "revocation", "cleanup"]


@dataclass(frozen=True)
class SmokeOutput:
    code: int
    rows: dict[str, tuple[str, str]]
    last_line: str
    text: str


def smoke(stack: LocalStack, *options: str) -> SmokeOutput:
    completed = subprocess.run(
        [str(CLI), "smoke", "--demo", str(stack.state_dir / "demo.json"), *options],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ},
    )
    lines = completed.stdout.strip().splitlines()
    rows: dict[str, tuple[str, str]] = {}
    for line in lines[1:-1]:
        name, status, detail = [*re.split(r"\s{2,}", line.strip(), maxsplit=2), "", ""][:3]
        rows[name.split(" (")[0]] = (status, detail)
    return SmokeOutput(
        completed.returncode, rows, lines[-1] if lines else "", completed.stdout + completed.stderr
    )


def test_the_smoke_test_passes_against_the_local_stack(stack: LocalStack) -> None:
    result = smoke(stack)

    assert result.code == 0, result.text
    assert result.last_line == f"smoke: passed, {len(CHECKS)} checks"
    assert list(result.rows) == CHECKS
    assert all(status == "ok" for status, _ in result.rows.values()), result.text
    assert "__Host-mp_session secure httponly samesite=none partitioned" in result.rows["exchange"][1]
    assert result.rows["websocket"][1] == "101 on /input/stream"
    # the fleet ingress's own Prometheus /metrics (demo.json's ingress_admin_ports) counted the page
    assert result.rows["origin assertion"][1].startswith("the ingress verified and served"), result.text
    assert "frame-ancestors" in result.rows["denial page"][1]
    # nothing credential-shaped in what it prints
    assert "mp_eyJ" not in result.text
    assert stack.demo["api_key"] not in result.text


def test_it_leaves_no_live_token_behind(stack: LocalStack) -> None:
    before = {token["id"] for token in stack_tokens(stack)}
    assert smoke(stack).code == 0
    assert {token["id"] for token in stack_tokens(stack)} <= before


def stack_tokens(stack: LocalStack) -> list[dict[str, str]]:
    reply = fetch(
        f"{stack.api_url}/api/v1/sandboxes/{stack.demo['sandbox_id']}/preview-tokens",
        headers={"Authorization": f"Bearer {stack.demo['api_key']}"},
    )
    assert reply.status == 200, reply.text
    tokens: list[dict[str, str]] = reply.json()["tokens"]
    return tokens


@pytest.fixture(scope="module")
def broken_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A second local stack whose origin is down: nothing listens where it proxies; and the fleet
    ingress of one sandbox is down: CloudFront cannot connect to it."""
    running = LocalStack.start(
        tmp_path_factory.mktemp("preview-local-broken"),
        {
            "PREVIEW_LOCAL_SANDBOX_ORIGIN_URL": f"http://127.0.0.1:{free_port()}",
            "PREVIEW_LOCAL_UNREACHABLE_INGRESS": INGRESS_DOWN_SANDBOX,
            "PREVIEW_LOCAL_INTEGRATION_TIMEOUT_SECONDS": "2",
        },
    )
    yield running
    running.stop()


INGRESS_DOWN_SANDBOX = "sbx-demo-2"  # a seeded sandbox of the demo tenant


def test_with_the_ingress_down_it_fails_at_the_page_and_still_cleans_up(broken_stack: LocalStack) -> None:
    assert INGRESS_DOWN_SANDBOX in broken_stack.demo["sandbox_ids"]

    result = smoke(broken_stack, "--sandbox", INGRESS_DOWN_SANDBOX)

    assert result.code == 1, result.text
    assert re.fullmatch(r"smoke: FAILED: page: the page answered 504: .+", result.last_line), result.text
    assert result.rows["mint"][0] == result.rows["exchange"][0] == "ok"
    assert result.rows["cleanup"] == ("ok", "the smoke test's token is revoked")


def test_with_the_origin_down_it_fails_at_the_page_and_still_cleans_up(broken_stack: LocalStack) -> None:
    result = smoke(broken_stack)

    assert result.code == 1, result.text
    assert re.fullmatch(r"smoke: FAILED: page: the page answered 50[24]: .+", result.last_line), result.text
    assert result.rows["mint"][0] == result.rows["exchange"][0] == "ok"
    assert result.rows["cleanup"] == ("ok", "the smoke test's token is revoked")


def wait_for_mint_status(stack: LocalStack, status: int) -> None:
    """Until the mint's cached key ring has refreshed (SigningKeysRefreshSeconds, 5 s locally)."""
    deadline = time.monotonic() + 30
    while stack.mint(stack.demo["api_key"], stack.demo["sandbox_id"]).status != status:
        assert time.monotonic() < deadline, f"the mint never answered {status}"
        time.sleep(0.5)


def test_with_the_signing_key_retired_it_fails_at_the_mint(broken_stack: LocalStack) -> None:
    keys = operator(broken_stack, "signing-key", "list")["keys"]
    [active] = [key["kid"] for key in keys if key["status"] == "active"]
    operator(broken_stack, "signing-key", "retire", active)
    wait_for_mint_status(broken_stack, 503)
    try:
        result = smoke(broken_stack)
    finally:
        operator(broken_stack, "signing-key", "create")
        wait_for_mint_status(broken_stack, 200)

    assert result.code == 1, result.text
    assert result.last_line == "smoke: FAILED: mint: mint answered 503: unavailable"
    assert result.rows["cleanup"] == ("ok", "nothing was minted")
    assert json.dumps(result.rows)  # a table, even when the first check fails


def test_with_stack_it_reads_the_api_url_and_domain_from_the_stacks_outputs(
    stack: LocalStack,
) -> None:
    """``--stack NAME``: the outputs of a CloudFormation stack (here in the local stack's moto)."""
    environment = {**os.environ, **stack.demo["operator_environment"]}
    with patched_environ(environment):
        boto3.client("cloudformation").create_stack(
            StackName="smoke-target",
            TemplateBody=json.dumps(
                {
                    "Resources": {"Nothing": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
                    "Outputs": {
                        "ControlPlaneApiUrl": {"Value": stack.api_url},
                        "PreviewDomainName": {"Value": stack.demo["preview_domain"]},
                    },
                }
            ),
        )
    completed = subprocess.run(
        [str(CLI), "smoke", "--stack", "smoke-target", "--sandbox", stack.demo["sandbox_id"]],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**environment, "PREVIEW_TOKENS_SMOKE_API_KEY": stack.demo["api_key"]},
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    last = completed.stdout.strip().splitlines()[-1]
    assert last == "smoke: passed, 6 checks (websocket, origin assertion skipped)"


def test_without_an_api_key_it_says_how_to_give_one(stack: LocalStack) -> None:
    completed = subprocess.run(
        [str(CLI), "smoke", "--api-url", stack.api_url, "--sandbox", "sbx-demo"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "PREVIEW_TOKENS_SMOKE_API_KEY"},
    )
    assert completed.returncode == 2
    assert "export PREVIEW_TOKENS_SMOKE_API_KEY" in completed.stderr
