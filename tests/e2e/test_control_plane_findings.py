"""Issue 14's control-plane findings over HTTP against the local stack.

* the hostile-body corpus against every operation the stack's own OpenAPI document lists:
  400, 413 or 415, never a 500;
* ``DELETE /api/v1/sandboxes/{id}/preview-tokens/{token_id}`` through the published MIOSA SDK
  (``miosa``), whose error handling reads our error bodies: its ``NotFoundError`` carries the
  ``code`` and the ``request_id``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import miosa
import pytest

from tests.e2e.local_stack import LocalStack, fetch
from tests.e2e.test_revocation import REVOCATION_DEADLINE_SECONDS, new_tenant
from tests.support.hostile_bodies import CORPUS, REFUSED

pytestmark = pytest.mark.e2e


def test_every_hostile_body_is_refused_over_http_by_every_operation_of_the_served_document(
    stack: LocalStack,
) -> None:
    document = fetch(f"{stack.api_url}/api/v1/openapi.json").json()
    operations = [
        (path, method.upper(), "requestBody" in operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]
    assert len(operations) >= 6
    minted = stack.mint(stack.demo["api_key"], stack.demo["sandbox_id"]).json()
    wrong: list[str] = []
    for path_template, method, takes_json_body in operations:
        url = stack.api_url + path_template.format(id=stack.demo["sandbox_id"], token_id=minted["id"])
        for hostile in CORPUS:
            headers = {"Authorization": f"Bearer {stack.demo['api_key']}"}
            if hostile.content_type:
                headers["Content-Type"] = hostile.content_type
            reply = fetch(url, method, headers, hostile.body)
            expected = hostile.expected(takes_json_body)
            if reply.status not in REFUSED or reply.status != expected:
                wrong.append(f"{method} {path_template} {hostile.name}: {reply.status} {reply.text[:120]}")
    assert wrong == []
    # and nothing was done: the token minted before the run is still live
    live = fetch(
        f"{stack.api_url}/api/v1/sandboxes/{stack.demo['sandbox_id']}/preview-tokens",
        headers={"Authorization": f"Bearer {stack.demo['api_key']}"},
    ).json()["tokens"]
    assert minted["id"] in [token["id"] for token in live]


@contextmanager
def sdk(stack: LocalStack, api_key: str) -> Iterator[miosa.Client]:
    """The SDK's client on the local stack's API (closed after: its connections are pooled)."""
    with miosa.Client(api_key=api_key, base_url=f"{stack.api_url}/api/v1", max_retries=0) as client:
        yield client


def exchanges(url: str) -> bool:
    """Whether the preview URL still opens a session (the exchange's 302)."""
    return fetch(url).status == 302


def test_one_token_is_revoked_by_its_id_through_the_miosa_sdk(stack: LocalStack) -> None:
    tenant = new_tenant(stack)
    with sdk(stack, tenant.api_key) as client:
        mint_path = f"/sandboxes/{tenant.sandbox_id}/preview-token"
        doomed: dict[str, Any] = client.admin.request("POST", mint_path, json_body={"scope": "read"})
        kept: dict[str, Any] = client.admin.request("POST", mint_path, json_body={"expires_in": 600.0})
        listed = client.admin.request("GET", f"/sandboxes/{tenant.sandbox_id}/preview-tokens")["tokens"]
        assert {token["id"] for token in listed} == {doomed["id"], kept["id"]}

        # When the tenant's backend revokes one of them by the id the list shows
        client.admin.request("DELETE", f"/sandboxes/{tenant.sandbox_id}/preview-tokens/{doomed['id']}")

        # Then it is gone from the list and stops opening previews; the other one goes on
        listed = client.admin.request("GET", f"/sandboxes/{tenant.sandbox_id}/preview-tokens")["tokens"]
        assert [token["id"] for token in listed] == [kept["id"]]
        deadline = time.monotonic() + REVOCATION_DEADLINE_SECONDS
        while exchanges(doomed["url"]) and time.monotonic() < deadline:
            time.sleep(0.25)
        assert not exchanges(doomed["url"])
        assert exchanges(kept["url"])
        # and doing it again is the same success (idempotent DELETE)
        client.admin.request("DELETE", f"/sandboxes/{tenant.sandbox_id}/preview-tokens/{doomed['id']}")


def test_the_sdk_raises_not_found_with_our_code_and_request_id(stack: LocalStack) -> None:
    tenant = new_tenant(stack)
    with sdk(stack, tenant.api_key) as client:
        elsewhere = client.admin.request("POST", f"/sandboxes/{tenant.other_sandbox_id}/preview-token")

        with pytest.raises(miosa.NotFoundError) as no_token:
            client.admin.request("DELETE", f"/sandboxes/{tenant.sandbox_id}/preview-tokens/{elsewhere['id']}")
        with pytest.raises(miosa.NotFoundError) as no_sandbox:
            client.admin.request(
                "DELETE",
                f"/sandboxes/{stack.demo['other_tenant_sandbox_id']}/preview-tokens/{elsewhere['id']}",
            )
        with pytest.raises(miosa.MiosaError) as too_large:
            client.admin.request("POST", "/preview-tokens/revoke", json_body={"token": "mp_" + "a" * 20_000})

        assert (no_token.value.status_code, no_token.value.code) == (404, "token_not_found")
        assert no_token.value.request_id
        assert (no_sandbox.value.status_code, no_sandbox.value.code) == (404, "sandbox_not_found")
        assert (too_large.value.status_code, too_large.value.code) == (413, "request_too_large")
        assert exchanges(elsewhere["url"])
