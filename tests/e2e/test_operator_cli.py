"""The operator CLI as an operator runs it, against the local stack's moto server over HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from preview_tokens.data_plane.edge_store import LocalEdgeStore
from preview_tokens.keys.tokens import header_segment
from preview_tokens.operator.operator_cli import EDGE_STORE_FILE

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
    assert [(key["key_id"], key["scopes"], key["revoked"]) for key in listed] == [
        (created["key_id"], ["previews:write"], True)
    ]


def test_the_cli_explains_a_refused_command_on_stderr(stack: LocalStack) -> None:
    operator(stack, "tenant", "create", "initech-2")  # a tenant that exists, and a sandbox id it does not own
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


# ------------------------------------------------------------------------------ the edge store


def edge_store(stack: LocalStack) -> LocalEdgeStore:
    """The local stack's stand-in for the CloudFront KeyValueStore, as the edge mirrors read it."""
    return LocalEdgeStore(Path(stack.demo["operator_environment"][EDGE_STORE_FILE]))


def run_operator(stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **stack.demo["operator_environment"]}
    return subprocess.run([str(CLI), *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_the_edge_holds_exactly_the_key_that_signs_previews(stack: LocalStack) -> None:
    # Given a preview token minted with the stack's signing key
    token = stack.mint(stack.demo["api_key"], stack.demo["sandbox_id"]).json()["token"]
    header, payload, signature = token.removeprefix("mp_").split(".")
    kid = json.loads(_b64url_decode(header))["kid"]

    # Then the edge's key.<kid> verifies it, as the edge function will; its hs.<header> is the same key
    secret = _b64url_decode(edge_store(stack).get(f"key.{kid}") or "")
    assert edge_store(stack).get(f"hs.{header}") == edge_store(stack).get(f"key.{kid}")
    expected = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert len(secret) == 32
    assert hmac.compare_digest(expected, _b64url_decode(signature))


def test_rotation_puts_the_new_key_at_the_edge_and_retirement_removes_it(stack: LocalStack) -> None:
    # When the operator rotates, the new key is at the edge, and nothing printed holds it
    rotated = run_operator(stack, "signing-key", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    kid = json.loads(rotated.stdout)["kid"]
    at_edge = edge_store(stack).get(f"key.{kid}")
    assert at_edge is not None
    assert edge_store(stack).get(f"hs.{header_segment(kid)}") == at_edge
    assert len(_b64url_decode(at_edge)) == 32
    assert at_edge not in rotated.stdout + rotated.stderr
    assert at_edge not in stack.output(), "a signing key in the stack's output"

    # When it is retired, the edge no longer has it, and retiring again is harmless
    assert operator(stack, "signing-key", "retire", kid) == {"kid": kid, "status": "retired"}
    assert edge_store(stack).get(f"key.{kid}") is None
    assert edge_store(stack).get(f"hs.{header_segment(kid)}") is None
    assert operator(stack, "signing-key", "retire", kid) == {"kid": kid, "status": "retired"}
    listed = {key["kid"]: key["status"] for key in operator(stack, "signing-key", "list")["keys"]}
    assert listed[kid] == "retired"
    # the demo's own key is untouched
    assert edge_store(stack).get(f"key.{stack.demo['signing_kid']}") is not None


def test_sandboxes_name_their_tenant_at_the_edge(stack: LocalStack) -> None:
    operator(stack, "tenant", "create", "hooli")
    operator(stack, "sandbox", "put", "--tenant", "hooli", "sbx-hooli-1")
    assert edge_store(stack).get("sb.sbx-hooli-1") == "hooli"

    operator(stack, "sandbox", "delete", "--tenant", "hooli", "sbx-hooli-1")
    assert edge_store(stack).get("sb.sbx-hooli-1") is None


def test_frame_ancestors_are_declared_validated_and_cleared(stack: LocalStack) -> None:
    operator(stack, "tenant", "create", "umbrella")
    local_origin = f"http://127.0.0.1:{stack.port}"

    declared = operator(
        stack, "tenant", "frame-ancestors", "umbrella", "https://*.Umbrella.com", local_origin
    )
    assert declared["frame_ancestors"] == ["https://*.umbrella.com", local_origin]
    assert edge_store(stack).get("fa.umbrella") == f"https://*.umbrella.com {local_origin}"

    # A refused declaration changes nothing, and says why
    for bad in (
        ["https://*.com"],
        ["http://umbrella.com"],
        [f"https://a{i}.umbrella.com" for i in range(17)],
    ):
        refused = run_operator(stack, "tenant", "frame-ancestors", "umbrella", *bad)
        assert refused.returncode == 2
        assert refused.stdout == ""
        assert refused.stderr.startswith("preview-tokens: ")
    assert edge_store(stack).get("fa.umbrella") == f"https://*.umbrella.com {local_origin}"
    assert run_operator(stack, "tenant", "frame-ancestors", "nobody-here", local_origin).returncode == 2

    # Disabling the tenant leaves the declaration at the edge; --clear removes it
    operator(stack, "tenant", "disable", "umbrella")
    assert edge_store(stack).get("fa.umbrella") is not None
    cleared = operator(stack, "tenant", "frame-ancestors", "umbrella", "--clear")
    assert cleared["frame_ancestors"] == []
    assert edge_store(stack).get("fa.umbrella") is None


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
