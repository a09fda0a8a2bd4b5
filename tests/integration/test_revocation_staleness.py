"""When the revocation store cannot be read: exchange until the allowed staleness, then 503, then recover.

The real exchange runs behind the local API Gateway emulation of template.yaml (so the answer is
what a browser gets: status, ``Retry-After``, page), with DynamoDB reached through a proxy the test
switches between forwarding, refusing connections and stalling them. (Pages behind the fleet
ingress meet the same rule there: ``tests/ingress``.)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import exchange_authorizer
import mint_api
import preview_exchange
import pytest
from preview_local.deployment import deploy_locally
from preview_local.edge import viewer_request
from preview_local.gateway import RestApiGateway
from preview_local.http_messages import HttpRequest, HttpResponse
from preview_local.moto_aws import MotoAws
from preview_local.rest_api import RestApi

from tests.integration.conftest import clear_cold_start_caches
from tests.support.deployment import PREVIEW_DOMAIN, SANDBOX, Deployment
from tests.support.events import lambda_context, load_event
from tests.support.switchable_proxy import SwitchableProxy, switchable_proxy

STALENESS_SECONDS = 1.5
HOST = f"{SANDBOX}.{PREVIEW_DOMAIN}"


class InProcess:
    """A handler invoked the way Lambda would (JSON in and out; an exception is a function error)."""

    def __init__(self, handler: Callable[[dict[str, Any], Any], Any]) -> None:
        self._handler = handler

    def invoke(self, event: dict[str, Any]) -> Any:
        return json.loads(json.dumps(self._handler(json.loads(json.dumps(event)), lambda_context())))


@pytest.fixture
def proxy(moto_aws: MotoAws) -> Iterator[SwitchableProxy]:
    with switchable_proxy(moto_aws.endpoint_url) as running:
        yield running


@pytest.fixture
def preview_gateway(
    deployment: Deployment, proxy: SwitchableProxy, monkeypatch: pytest.MonkeyPatch
) -> RestApiGateway:
    """The data plane with DynamoDB behind the proxy and a staleness of 1.5 s."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", proxy.url)
    monkeypatch.setenv("REVOCATIONS_MAX_STALENESS_SECONDS", str(STALENESS_SECONDS))
    clear_cold_start_caches()
    local = deploy_locally(
        {
            "PreviewDomain": PREVIEW_DOMAIN,
            "SandboxOriginUrl": "https://fleet.example.com",
            "FrameAncestors": "https:",
        },
        {**deployment.resources.tables, "SigningKeyMasterKey": deployment.resources.kms_key_id},
    )
    functions = {
        "ExchangeFunction": InProcess(preview_exchange.lambda_handler),
        "PreviewAuthorizerFunction": InProcess(exchange_authorizer.lambda_handler),
    }
    return RestApiGateway(RestApi.from_deployment(local.rest_apis["PreviewApi"]), functions, 443)


def minted_token(deployment: Deployment) -> str:
    response = mint_api.lambda_handler(
        load_event("mint_read", credential=deployment.api_key), lambda_context()
    )
    token: str = json.loads(response["body"])["token"]
    return token


def exchange(gateway: RestApiGateway, token: str) -> HttpResponse:
    """The link's first request as the edge forwards it: under /__preview/exchange, mt in its header."""
    return gateway.handle(viewer_request(HttpRequest("GET", "/", f"mt={token}", (("Host", HOST),))))


@pytest.mark.parametrize("outage", ["refuse", "stall"])
def test_the_exchange_serves_until_the_staleness_then_503_and_recovers_by_itself(
    deployment: Deployment, proxy: SwitchableProxy, preview_gateway: RestApiGateway, outage: str
) -> None:
    token = minted_token(deployment)
    assert exchange(preview_gateway, token).status == 302  # keys and revocations loaded

    # When the revocation store becomes unreachable
    getattr(proxy, outage)()
    outage_began = time.monotonic()

    # Then links keep opening while the view is younger than the staleness allowed (a refused store
    # answers at once; a stalled one holds the exchange's own first-use write past the staleness)
    if outage == "refuse":
        assert exchange(preview_gateway, token).status == 302
        assert time.monotonic() - outage_began < STALENESS_SECONDS, "the machine was too slow to tell"

    # And past it, every link is answered 503 + Retry-After with the "Preview unavailable" page
    time.sleep(STALENESS_SECONDS + 0.2)
    refused_exchange = exchange(preview_gateway, token)
    assert refused_exchange.status == 503
    assert refused_exchange.header("Retry-After") == "5"
    assert "Preview unavailable" in refused_exchange.body.decode()

    # And once the store answers again, the next link opens: no restart, no 500
    proxy.forward()
    assert exchange(preview_gateway, token).status == 302
