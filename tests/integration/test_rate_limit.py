"""The per-tenant mint rate limit and the mint's DynamoDB round trips, against moto."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any

import mint_api
import pytest
from preview_tokens.control_plane.mint import MintService
from preview_tokens.errors import RateLimitedError
from preview_tokens.keys.aws_json import AwsJsonClient
from preview_tokens.keys.dynamodb import default_client
from preview_tokens.settings import mint_settings

from tests.support.deployment import OTHER_SANDBOX, OTHER_TENANT, TENANT, Deployment
from tests.support.events import for_sandbox, lambda_context, load_event
from tests.support.responses import HttpResponse, from_proxy_result


def mint(credential: str, sandbox_id: str | None = None) -> HttpResponse:
    event = load_event("mint_read", credential=credential)
    if sandbox_id is not None:
        event = for_sandbox(event, sandbox_id)
    return from_proxy_result(mint_api.lambda_handler(event, lambda_context()))


def test_over_the_limit_a_mint_is_429_with_retry_after_in_header_and_body(deployment: Deployment) -> None:
    deployment.tenants.set_mint_rate_limit(TENANT, 2)

    statuses = [mint(deployment.api_key).status for _ in range(3)]
    refused = mint(deployment.api_key)

    assert statuses == [200, 200, 429]
    assert refused.status == 429
    retry_after = int(refused.header("Retry-After") or "0")
    assert 1 <= retry_after <= 60
    body = refused.json()
    assert body == {
        "error": {
            "code": "rate_limited",
            "message": body["error"]["message"],
            "retryable": True,
            "retry_after_ms": retry_after * 1000,
        },
        "request_id": refused.header("X-Request-Id"),
    }
    assert mint(deployment.other_tenant_api_key, OTHER_SANDBOX).status == 200


def test_the_default_limit_comes_from_the_setting(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINT_RATE_LIMIT_PER_MINUTE", "1")
    mint_settings.cache_clear()
    mint_api.mint_service.cache_clear()
    assert [mint(deployment.api_key).status for _ in range(2)] == [200, 429]


def test_a_503_body_is_retryable_with_its_retry_after(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    response = mint(deployment.api_key)
    assert response.status == 503
    assert response.json()["error"]["retryable"] is True
    assert response.json()["error"]["retry_after_ms"] == int(response.header("Retry-After") or "0") * 1000


def test_twenty_concurrent_mints_against_a_limit_of_five_let_exactly_five_through(
    deployment: Deployment,
) -> None:
    # Given a tenant limited to 5 mints a minute, and twenty warm containers of the mint function
    deployment.tenants.set_mint_rate_limit(TENANT, 5)
    containers = [MintService.from_settings(mint_settings()) for _ in range(20)]
    for container in containers:  # warm: signing key decrypted, tenant read
        container.minter.signing_keys.signing_key()
        container.tenants.get(TENANT)
    start = threading.Barrier(len(containers))
    outcomes: list[Any] = []
    lock = threading.Lock()

    def mint_once(container: MintService) -> None:
        start.wait()
        try:
            outcome: Any = container.mint(f"Bearer {deployment.api_key}", "sbx-abc123", None, "req")
        except RateLimitedError as error:
            outcome = error
        with lock:
            outcomes.append(outcome)

    # When all twenty mint at once
    threads = [threading.Thread(target=mint_once, args=(container,)) for container in containers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then exactly five tokens were issued, the other fifteen were told when to retry
    kinds = Counter(type(outcome).__name__ for outcome in outcomes)
    assert kinds == {"MintedToken": 5, "RateLimitedError": 15}
    assert all(1 <= o.retry_after <= 60 for o in outcomes if isinstance(o, RateLimitedError))
    # And another tenant is unaffected
    assert mint(deployment.other_tenant_api_key, OTHER_SANDBOX).status == 200
    assert OTHER_TENANT != TENANT


def test_a_warm_mint_makes_two_dynamodb_round_trips(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    original = AwsJsonClient.call

    def counted(client: AwsJsonClient, operation: str, payload: Mapping[str, object]) -> dict[str, object]:
        calls.append(f"{client.service}.{operation}")
        return original(client, operation, payload)

    def boto3_call(**kwargs: Any) -> None:
        calls.append(f"boto3 dynamodb.{kwargs['model'].name}")

    assert mint(deployment.api_key).status == 200  # cold: the signing key and the tenant are read
    monkeypatch.setattr(AwsJsonClient, "call", counted)
    default_client().meta.events.register("before-call.dynamodb", boto3_call)
    try:
        assert mint(deployment.api_key).status == 200
    finally:
        default_client().meta.events.unregister("before-call.dynamodb", boto3_call)

    assert calls == ["dynamodb.BatchGetItem", "dynamodb.TransactWriteItems"]
