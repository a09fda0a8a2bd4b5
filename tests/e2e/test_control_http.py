"""Control after minting over real HTTP against the local stack: rate limit, list, audit, key revocation."""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.local_stack import LocalStack, Reply, fetch
from tests.e2e.test_operator_cli import operator
from tests.e2e.test_revocation import new_tenant, session_cookie_for

pytestmark = pytest.mark.e2e

_CREDENTIAL = re.compile(r"mp_eyJ|msk_[A-Za-z0-9_-]{8}|__Host-mp_session=")


def wait_out_the_end_of_a_minute() -> None:
    """Twenty mints take well under a second; keep them inside one rate-limit window."""
    into_minute = time.time() % 60
    if into_minute > 55:
        time.sleep(60 - into_minute + 0.2)


def test_twenty_concurrent_mints_over_a_limit_of_five_let_exactly_five_through(stack: LocalStack) -> None:
    key, sandbox_id = stack.demo["rate_limited_api_key"], stack.demo["rate_limited_sandbox_id"]
    assert stack.demo["rate_limited_per_minute"] == 5
    wait_out_the_end_of_a_minute()

    with ThreadPoolExecutor(max_workers=20) as pool:
        replies: list[Reply] = list(pool.map(lambda _: stack.mint(key, sandbox_id), range(20)))

    statuses = sorted(reply.status for reply in replies)
    assert statuses == [200] * 5 + [429] * 15
    for reply in replies:
        if reply.status == 429:
            retry_after = int(reply.headers["Retry-After"])
            assert 1 <= retry_after <= 60
            body = reply.json()
            assert body["error"]["code"] == "rate_limited"
            assert body["error"]["retryable"] is True
            assert body["error"]["retry_after_ms"] == retry_after * 1000
            assert body["request_id"] == reply.headers["X-Request-Id"]
    # Other tenants are unaffected
    assert stack.mint(stack.demo["api_key"], stack.demo["sandbox_id"]).status == 200


def test_the_operator_overrides_a_tenants_rate_limit(stack: LocalStack) -> None:
    tenant = new_tenant(stack)
    operator(stack, "tenant", "set-rate-limit", tenant.tenant_id, "--per-minute", "1")
    wait_out_the_end_of_a_minute()  # (a new tenant: no mint container has it cached yet)
    assert [stack.mint(tenant.api_key, tenant.sandbox_id).status for _ in range(2)] == [200, 429]


def test_the_live_list_and_the_audit_trail_after_a_scripted_session(stack: LocalStack) -> None:
    tenant = new_tenant(stack)
    kept = stack.mint(tenant.api_key, tenant.sandbox_id, {"scope": "interact"}).json()
    revoked = stack.mint(tenant.api_key, tenant.sandbox_id).json()
    opened = fetch(kept["url"], headers={"Referer": f"{stack.api_url}/embedding/page?x=1"})
    assert opened.status == 302
    revoke = fetch(
        f"{stack.api_url}/api/v1/preview-tokens/revoke",
        "POST",
        {"Authorization": f"Bearer {tenant.api_key}", "Content-Type": "application/json"},
        json.dumps({"token": revoked["token"]}).encode(),
    )
    assert revoke.status == 200

    listed = fetch(
        f"{stack.api_url}/api/v1/sandboxes/{tenant.sandbox_id}/preview-tokens",
        headers={"Authorization": f"Bearer {tenant.api_key}"},
    )
    assert listed.status == 200
    (only,) = listed.json()["tokens"]
    assert only["id"] == kept["id"]
    assert only["created_by"] == tenant.key_id
    assert only["first_used_at"] is not None
    assert "mp_" not in listed.text

    entries = operator(stack, "audit", "list", "--tenant", tenant.tenant_id, "--sandbox", tenant.sandbox_id)[
        "entries"
    ]
    assert [(entry["event"], entry["actor"], entry["jti"]) for entry in entries] == [
        ("mint", tenant.key_id, kept["id"]),
        ("mint", tenant.key_id, revoked["id"]),
        ("first_use", "viewer", kept["id"]),
        ("revoke", tenant.key_id, revoked["id"]),
    ]
    assert entries[2]["origin"] == stack.api_url
    assert not _CREDENTIAL.search(json.dumps(entries))


def test_revoking_a_leaked_api_key_ends_its_previews(stack: LocalStack) -> None:
    tenant = new_tenant(stack)
    minted = stack.mint(tenant.api_key, tenant.sandbox_id).json()
    cookie = session_cookie_for(stack, minted["url"])
    page = f"{stack.preview_origin(tenant.sandbox_id)}/"
    assert fetch(page, headers={"Cookie": cookie}).status == 200

    result = operator(stack, "api-key", "revoke", "--tenant", tenant.tenant_id, tenant.key_id, "--leaked")
    revoked_at = time.monotonic()

    assert result == {"key_id": tenant.key_id, "revoked": True, "tokens_revoked": True}
    status = fetch(page, headers={"Cookie": cookie}).status
    while status == 200 and time.monotonic() - revoked_at < 5:
        time.sleep(0.1)
        status = fetch(page, headers={"Cookie": cookie}).status
    assert status == 403
    assert stack.mint(tenant.api_key, tenant.sandbox_id).status == 401
    audit = operator(stack, "audit", "list", "--tenant", tenant.tenant_id)["entries"]
    assert audit[-1]["event"] == "revoke"
    assert audit[-1]["actor"] == "operator"
    assert audit[-1]["revoked"] == "credential"


def test_revocation_endpoints_are_in_the_served_openapi_document(stack: LocalStack) -> None:
    document = fetch(f"{stack.api_url}/api/v1/openapi.json").json()
    assert "post" in document["paths"]["/api/v1/preview-tokens/revoke"]
    assert {"get", "delete"} <= set(document["paths"]["/api/v1/sandboxes/{id}/preview-tokens"])
