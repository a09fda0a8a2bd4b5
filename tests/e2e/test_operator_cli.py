"""The operator CLI as an operator runs it, against the local stack's moto server over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.local_stack import LocalStack, fetch

pytestmark = pytest.mark.e2e

CLI = Path(sys.executable).with_name("preview-tokens")


def operator(stack: LocalStack, *args: str) -> dict[str, Any]:
    """Run ``preview-tokens ARGS`` in its own process; its JSON output."""
    env = {**os.environ, **stack.demo["operator_environment"]}
    completed = subprocess.run(
        [str(CLI), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    document: dict[str, Any] = json.loads(completed.stdout)
    return document


def test_tenant_key_sandbox_mint_revoke_round_trip(stack: LocalStack) -> None:
    # Given an operator who creates a tenant, an API key and a sandbox with the CLI
    operator(stack, "tenant", "create", "initech", "--name", "Initech")
    created = operator(stack, "api-key", "create", "--tenant", "initech")
    operator(stack, "sandbox", "put", "--tenant", "initech", "sbx-initech-1")
    assert created["api_key"].startswith("msk_")
    assert created["scopes"] == ["previews:write"]

    # When the tenant's backend mints with that key over HTTP, it gets a preview
    minted = stack.mint(created["api_key"], "sbx-initech-1", {"scope": "read"})
    assert minted.status == 200, minted.text
    assert minted.json()["url"].startswith(
        f"http://sbx-initech-1.{stack.demo['preview_domain']}:{stack.port}?mt=mp_"
    )

    # And once the operator revokes the key, the same call is refused
    assert operator(stack, "api-key", "revoke", "--tenant", "initech", created["key_id"]) == {
        "key_id": created["key_id"],
        "revoked": True,
    }
    refused = stack.mint(created["api_key"], "sbx-initech-1", {"scope": "read"})
    assert refused.status == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    listed = operator(stack, "api-key", "list", "--tenant", "initech")["keys"]
    assert listed == [{"key_id": created["key_id"], "scopes": ["previews:write"], "revoked": True}]


def test_the_cli_explains_a_refused_command_on_stderr(stack: LocalStack) -> None:
    env = {**os.environ, **stack.demo["operator_environment"]}
    completed = subprocess.run(
        [str(CLI), "sandbox", "put", "--tenant", "initech-2", stack.demo["other_tenant_sandbox_id"]],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert completed.returncode == 2
    assert "cannot put sandbox" in completed.stderr
    assert completed.stdout == ""


def test_rotating_the_signing_key_keeps_old_previews_working(stack: LocalStack) -> None:
    before = stack.mint(stack.demo["api_key"], stack.demo["sandbox_id"], {"scope": "read"}).json()
    rotated = operator(stack, "signing-key", "rotate")
    keys = operator(stack, "signing-key", "list")["keys"]
    assert rotated["kid"] in {key["kid"] for key in keys if key["status"] == "active"}
    assert len([key for key in keys if key["status"] == "active"]) >= 2
    assert fetch(before["url"]).status == 302  # a token of the previous key still opens its preview


def test_the_operator_prints_the_origin_keys_the_control_plane_publishes(stack: LocalStack) -> None:
    printed = operator(stack, "origin-key", "jwks")
    published = fetch(stack.demo["origin_keys_url"])

    assert published.status == 200
    assert printed == published.json()
    assert [jwk["crv"] for jwk in printed["keys"]] == ["Ed25519"]
    listed = operator(stack, "origin-key", "list")["keys"]
    assert [key["kid"] for key in listed if key["status"] == "active"] == [
        jwk["kid"] for jwk in printed["keys"]
    ]
