"""SAM local invocations without Docker: ``make run`` writes ready events, ``preview-local invoke`` runs them.

The events in ``.local/events/`` carry the running stack's API key and a fresh token; the
invocation reads the function's handler and environment from ``template.yaml`` and runs it
in-process against the stack's moto server, printing the result as ``sam local invoke`` does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from preview_tokens.data_plane.access import SESSION_COOKIE

from tests.e2e.local_stack import LocalStack

pytestmark = pytest.mark.e2e


def run_invoke(stack: LocalStack, function: str, event_file: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "preview_local", "invoke", function, event_file],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PREVIEW_LOCAL_STATE_DIR": str(stack.state_dir), "PATH": "/usr/bin:/bin"},
        check=False,
    )


def invoke(stack: LocalStack, function: str, event: str) -> tuple[int, Any, str]:
    """Exit code, the printed result (JSON) and stderr of ``preview-local invoke``."""
    completed = run_invoke(stack, function, str(stack.state_dir / "events" / event))
    assert completed.stdout.count("\n") == 1, f"one result line on stdout:\n{completed.stdout}"
    return completed.returncode, json.loads(completed.stdout), completed.stderr


def test_the_ready_mint_event_mints_a_token_with_the_stacks_api_key(stack: LocalStack) -> None:
    code, result, logs = invoke(stack, "MintFunction", "mint.json")

    assert code == 0
    assert result["statusCode"] == 200
    body = json.loads(result["body"])
    assert body["token"].startswith("mp_")
    assert body["url"] == f"{stack.preview_origin(stack.demo['sandbox_id'])}?mt={body['token']}"
    assert "preview token minted" in logs  # the function's log lines go to stderr, as with SAM
    # and the token works on the running stack
    assert stack.mint(stack.demo["api_key"], stack.demo["sandbox_id"]).status == 200


def test_the_ready_denied_event_renders_the_denial_page_with_the_tenants_frame_ancestors(
    stack: LocalStack,
) -> None:
    """``denied.json``: the request PreviewEdge sends the REST API for an expired session."""
    code, result, _ = invoke(stack, "ExchangeFunction", "denied.json")

    assert code == 0
    assert result["statusCode"] == 403
    assert "<h1>Preview session expired</h1>" in result["body"]
    assert (
        "frame-ancestors http://127.0.0.1:* http://localhost:*"
        in result["headers"]["Content-Security-Policy"]
    )


def test_the_ready_authorizer_event_grants_the_exchange_its_token(stack: LocalStack) -> None:
    """``authorizer.json``: what API Gateway sends the ``?mt=`` authorizer before the exchange."""
    code, result, _ = invoke(stack, "PreviewAuthorizerFunction", "authorizer.json")

    assert code == 0
    assert result["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    assert result["principalId"] == stack.demo["sandbox_id"]
    assert "reason" not in result.get("context", {}), result.get("context")


def test_the_ready_exchange_event_answers_a_redirect_with_the_session_cookie(stack: LocalStack) -> None:
    code, result, _ = invoke(stack, "ExchangeFunction", "exchange.json")

    assert code == 0
    assert result["statusCode"] == 302
    assert result["headers"]["Location"] == "/__preview/cookie-check"
    assert any(
        cookie.startswith(f"{SESSION_COOKIE}=mp_") for cookie in result["multiValueHeaders"]["Set-Cookie"]
    )


def test_the_ready_cookie_check_event_sends_the_browser_on_to_the_page(stack: LocalStack) -> None:
    code, result, _ = invoke(stack, "ExchangeFunction", "cookie_check.json")
    assert (code, result["statusCode"], result["headers"]["Location"]) == (0, 302, "/")


def test_sam_env_vars_point_every_function_at_the_stacks_moto_through_the_docker_host(
    stack: LocalStack,
) -> None:
    env_vars = json.loads((stack.state_dir / "sam-env.json").read_text(encoding="utf-8"))
    moto_port = stack.demo["operator_environment"]["AWS_ENDPOINT_URL"].rsplit(":", 1)[1]

    assert set(env_vars) == {"MintFunction", "PreviewAuthorizerFunction", "ExchangeFunction"}
    for variables in env_vars.values():
        assert variables["AWS_ENDPOINT_URL"] == f"http://host.docker.internal:{moto_port}"
        assert variables["SIGNING_KEYS_TABLE"] == stack.demo["operator_environment"]["SIGNING_KEYS_TABLE"]
    assert env_vars["MintFunction"]["API_KEYS_TABLE"] == stack.demo["operator_environment"]["API_KEYS_TABLE"]


def test_an_unknown_function_or_a_missing_event_is_a_clear_error(stack: LocalStack) -> None:
    unknown = run_invoke(stack, "NoSuchFunction", str(stack.state_dir / "events" / "mint.json"))
    missing = run_invoke(stack, "MintFunction", str(stack.state_dir / "nope.json"))
    assert (unknown.returncode, unknown.stdout) == (2, "")
    assert "has no function NoSuchFunction" in unknown.stderr
    assert (missing.returncode, missing.stdout) == (2, "")
    assert "cannot read the event" in missing.stderr
