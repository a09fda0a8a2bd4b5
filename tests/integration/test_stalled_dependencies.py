"""A stalled DynamoDB or KMS (accepts, never answers): the functions answer 503 quickly and back off.

The real handlers run against moto, with one dependency's endpoint replaced by a socket that
accepts connections and never answers. What the tests count is connections, never seconds: the
retry budget is the number of attempts, the back-off is the number of requests that did *not*
reach the store. The data plane is driven through the local API Gateway emulation built from
template.yaml, so the 503, its ``Retry-After`` and the page are what a browser would get.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import exchange_authorizer
import mint_api
import preview_exchange
import pytest
from preview_local.deployment import deploy_locally
from preview_local.gateway import RestApiGateway
from preview_local.http_messages import HttpRequest, HttpResponse
from preview_local.moto_aws import MotoAws
from preview_local.rest_api import RestApi
from preview_tokens.data_plane.access import FALLBACK_TOKEN_HEADER
from preview_tokens.keys.aws_timeouts import worst_case_call_seconds
from preview_tokens.keys.signing_keys import RETRY_MAX_SECONDS

from tests.integration.conftest import clear_cold_start_caches
from tests.support.deployment import PREVIEW_DOMAIN, SANDBOX, Deployment
from tests.support.events import lambda_context, load_event
from tests.support.preview_tokens import host_of, token_for
from tests.support.responses import HttpResponse as ProxyResponse
from tests.support.responses import from_proxy_result
from tests.support.stalled_endpoint import StalledEndpoint, stalled_endpoint
from tests.support.template import cloudformation, placeholder_physical_ids

PREVIEW_HOST = host_of(SANDBOX)
RECOVERY_DEADLINE_SECONDS = 30.0


@pytest.fixture
def stalled() -> Iterator[StalledEndpoint]:
    with stalled_endpoint() as endpoint:
        yield endpoint


def stall(monkeypatch: pytest.MonkeyPatch, service: str, endpoint: StalledEndpoint) -> None:
    """Point one service at the stalled endpoint, as a new execution environment would see it."""
    monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service.upper()}", endpoint.url)
    clear_cold_start_caches()


def mint(credential: str) -> ProxyResponse:
    return from_proxy_result(
        mint_api.lambda_handler(load_event("mint_read", credential=credential), lambda_context())
    )


def assert_unavailable(response: ProxyResponse) -> None:
    assert response.status == 503, response.body
    assert response.json()["error"]["code"] == "unavailable"
    assert int(response.header("Retry-After") or "0") >= 1


# ------------------------------------------------------------------------------------ mint


def test_a_stalled_dynamodb_gets_503_after_the_retry_budget_not_a_hang(
    deployment: Deployment, stalled: StalledEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    stall(monkeypatch, "dynamodb", stalled)

    response = mint(deployment.api_key)

    assert_unavailable(response)
    assert stalled.connections == 1  # the mint's reads and writes go through its own one-attempt client


def test_a_stalled_kms_gets_503_after_one_attempt(
    deployment: Deployment, stalled: StalledEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    stall(monkeypatch, "kms", stalled)

    response = mint(deployment.api_key)

    assert_unavailable(response)
    assert stalled.connections == 1


def test_a_stalled_call_gives_up_well_before_the_functions_time_out() -> None:
    resources = cloudformation()["Resources"]
    for name in ("MintFunction", "PreviewAuthorizerFunction", "ExchangeFunction"):
        timeout = resources[name]["Properties"]["Timeout"]
        assert worst_case_call_seconds() < timeout, name
    assert worst_case_call_seconds() < 29  # API Gateway's integration timeout


# ------------------------------------------------------------------------------ data plane


class Handler:
    """A handler as the local gateway invokes a Lambda function."""

    def __init__(self, function: Any) -> None:
        self._function = function

    def invoke(self, event: dict[str, Any]) -> Any:
        return self._function(event, lambda_context())


@pytest.fixture
def preview_gateway() -> RestApiGateway:
    local = deploy_locally(
        {"PreviewDomain": PREVIEW_DOMAIN, "SandboxOriginUrl": "https://fleet.example.com"},
        placeholder_physical_ids(),
    )
    functions = {
        "ExchangeFunction": Handler(preview_exchange.lambda_handler),
        "PreviewAuthorizerFunction": Handler(exchange_authorizer.lambda_handler),
    }
    return RestApiGateway(RestApi.from_deployment(local.rest_apis["PreviewApi"]), functions, 443)


def exchange_request(token: str) -> HttpRequest:
    """The exchange request as the edge forwards ``?mt=``: the token in its header."""
    return HttpRequest(
        "GET", "/__preview/exchange", "", (("Host", PREVIEW_HOST), (FALLBACK_TOKEN_HEADER, token))
    )


def assert_unavailable_page(response: HttpResponse) -> None:
    assert response.status == 503
    assert 1 <= int(response.header("Retry-After") or "0") <= RETRY_MAX_SECONDS
    assert response.header("Content-Type") == "text/html; charset=utf-8"
    assert "Preview unavailable" in response.body.decode()


def test_a_key_store_outage_is_a_503_page_that_backs_off_and_recovers_by_itself(
    deployment: Deployment,
    stalled: StalledEndpoint,
    moto_aws: MotoAws,
    preview_gateway: RestApiGateway,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = token_for(deployment)
    stall(monkeypatch, "dynamodb", stalled)

    # The first requests try the store (the keys; the denial page's frame-ancestors, whose stall can
    # outlast the keys' first back-off): then both back off, and no request reaches the store.
    first = [preview_gateway.handle(exchange_request(token)) for _ in range(2)]
    tried = stalled.connections
    following = [preview_gateway.handle(exchange_request(token)) for _ in range(20)]

    for response in (*first, *following):
        assert_unavailable_page(response)
    assert stalled.connections == tried, "the store was tried again on every request instead of backing off"

    stalled.heal(moto_aws.endpoint_url)
    deadline = time.monotonic() + RECOVERY_DEADLINE_SECONDS
    recovered = preview_gateway.handle(exchange_request(token))
    while recovered.status == 503 and time.monotonic() < deadline:
        time.sleep(0.2)
        recovered = preview_gateway.handle(exchange_request(token))

    assert recovered.status == 302
