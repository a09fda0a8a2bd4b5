"""The exchange route's authorizer is the ``?mt=`` verifier; the exchange sets cookies only from its context.

Both handlers against moto: the authorizer always allows, its context carrying the verified
token and claims (a grant) or the denial's reason, which the exchange renders; the exchange alone
(no context) never sets a cookie.
"""

from __future__ import annotations

import json
from typing import Any

import preview_exchange
import pytest

from tests.integration.conftest import clear_cold_start_caches
from tests.integration.test_exchange import embedded_event
from tests.integration.test_token_lifecycle import minted, revoke_token
from tests.support.deployment import Deployment
from tests.support.events import lambda_context, load_event, set_header
from tests.support.exchange import authorize, exchange_handler, has_identity
from tests.support.preview_tokens import change_char, host_of, token_for
from tests.support.responses import HttpResponse, from_proxy_result


def context_of(event: dict[str, Any]) -> dict[str, Any]:
    context: dict[str, Any] = authorize(event)["context"]
    return context


def exchange(event: dict[str, Any]) -> HttpResponse:
    return from_proxy_result(exchange_handler(event))


def assert_refused(event: dict[str, Any], reason: str) -> None:
    context = context_of(event)
    assert context["reason"] == reason
    assert "token" not in context
    assert "claims" not in context
    response = exchange(event)
    assert response.status == 403
    assert response.header("Set-Cookie") is None
    assert embedded_event(response.body)["reason"] == reason
    assert "frame-ancestors" in (response.header("Content-Security-Policy") or "")


def test_a_valid_token_is_granted_in_the_context_and_becomes_the_session(deployment: Deployment) -> None:
    token = token_for(deployment)
    event = load_event("exchange_mt", token=token)
    context = context_of(event)
    assert "reason" not in context
    assert context["token"] == token
    assert json.loads(context["claims"])["sub"] == "sbx-abc123"
    assert context["origin_assertion"]
    response = exchange(event)
    assert response.status == 302
    assert any(
        cookie.startswith(f"__Host-mp_session={token};") for cookie in response.multi_header("Set-Cookie")
    )


def test_an_expired_token_is_refused_by_the_authorizer(deployment: Deployment) -> None:
    assert_refused(load_event("exchange_mt", token=token_for(deployment, expires_in=-30)), "expired")


def test_a_token_for_another_sandbox_is_refused_by_the_authorizer(deployment: Deployment) -> None:
    event = set_header(load_event("exchange_mt", token=token_for(deployment)), "Host", host_of("sbx-other"))
    event["requestContext"]["domainName"] = host_of("sbx-other")
    assert_refused(event, "wrong_sandbox")


def test_a_revoked_token_is_refused_by_the_authorizer(deployment: Deployment) -> None:
    token = minted(deployment.api_key)["token"]
    assert revoke_token(deployment.api_key, token).status in (200, 204)
    clear_cold_start_caches()
    assert_refused(load_event("exchange_mt", token=token), "revoked")


def test_a_forged_token_is_refused_by_the_authorizer(deployment: Deployment) -> None:
    assert_refused(load_event("exchange_mt", token=change_char(token_for(deployment), 2)), "invalid_token")


def test_without_the_header_the_exchange_gets_no_context_and_sets_no_cookie(deployment: Deployment) -> None:
    event = set_header(load_event("exchange_mt", token=""), "x-preview-token", None)
    assert not has_identity(event)  # API Gateway answers UNAUTHORIZED (test_local_gateway)
    response = from_proxy_result(preview_exchange.lambda_handler(event, lambda_context()))
    assert response.status == 403
    assert response.header("Set-Cookie") is None
    assert embedded_event(response.body)["reason"] == "invalid_token"


@pytest.mark.parametrize(
    "context",
    [
        {"token": "mp_x"},  # no claims
        {"claims": "{}", "token": "mp_x"},  # unreadable claims
        {"reason": "no-such-reason"},
    ],
)
def test_a_context_without_a_grant_fails_closed(deployment: Deployment, context: dict[str, str]) -> None:
    event = load_event("exchange_mt", token=token_for(deployment))
    event["requestContext"]["authorizer"] = context
    response = from_proxy_result(preview_exchange.lambda_handler(event, lambda_context()))
    assert response.status == 403
    assert response.header("Set-Cookie") is None
    assert embedded_event(response.body)["reason"] == "invalid_token"
