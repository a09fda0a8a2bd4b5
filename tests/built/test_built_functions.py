"""The built artifacts in ``.aws-sam/build`` work as Lambda would run them, with ``events/``."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from tests.built.conftest import LAYER_PYTHON, BuiltFunctions
from tests.support.deployment import Deployment
from tests.support.events import load_event
from tests.support.exchange import authorizer_event

LOCK = Path(__file__).resolve().parents[2] / "uv.lock"


def locked_version(package: str) -> str:
    lock = tomllib.loads(LOCK.read_text(encoding="utf-8"))
    return str(next(entry["version"] for entry in lock["package"] if entry["name"] == package))


def test_built_mint_function_mints_a_token_with_the_layer_it_ships(
    built: BuiltFunctions, deployment: Deployment
) -> None:
    invocation = built.invoke("MintFunction", load_event("mint_read", credential=deployment.api_key))

    response = invocation.results[0]
    assert response["statusCode"] == 200, response
    token = json.loads(response["body"])["token"]
    assert token.startswith("mp_")
    assert token not in "".join(built.logs)
    assert deployment.api_key not in "".join(built.logs)
    assert {"preview_tokens", "boto3", "botocore", "aws_lambda_powertools"} <= set(invocation.modules)
    for module, origin in invocation.modules.items():
        assert str(origin).startswith(str(LAYER_PYTHON)), (module, invocation.modules)
    assert invocation.versions == {"boto3": locked_version("boto3"), "botocore": locked_version("botocore")}
    # the mint's cold path imports neither boto3 nor pydantic nor pyjwt (README "Performance")
    assert not {"boto3", "pydantic", "jwt"} & set(invocation.loaded)


def test_built_mint_function_refuses_a_request_without_credential(built: BuiltFunctions) -> None:
    invocation = built.invoke("MintFunction", load_event("mint_no_credential"))

    assert invocation.results[0]["statusCode"] == 401


def test_built_mint_function_answers_a_lifecycle_route_without_a_stray_warning(
    built: BuiltFunctions, deployment: Deployment
) -> None:
    invocation = built.invoke(
        "MintFunction", load_event("list_sandbox_tokens", credential=deployment.api_key)
    )

    assert invocation.results[0]["statusCode"] == 200, invocation.results[0]
    assert invocation.stderr == ""  # no metric to publish is expected: no Powertools warning for it


def minted_token(built: BuiltFunctions, deployment: Deployment, scope: str = "mint_interact") -> str:
    response = built.invoke("MintFunction", load_event(scope, credential=deployment.api_key)).results[0]
    assert response["statusCode"] == 200, response
    token: str = json.loads(response["body"])["token"]
    return token


def test_built_authorizer_grants_a_minted_token_and_refuses_garbage_in_its_context(
    built: BuiltFunctions, deployment: Deployment
) -> None:
    """The exchange route's ``?mt=`` authorizer always allows; its context carries the verdict."""
    token = minted_token(built, deployment)

    invocation = built.invoke(
        "PreviewAuthorizerFunction",
        authorizer_event(load_event("exchange_mt", token=token)),
        authorizer_event(load_event("exchange_mt", token="mp_garbage")),
    )

    granted, refused = invocation.results
    assert [s["Effect"] for s in granted["policyDocument"]["Statement"]] == ["Allow"]
    assert "reason" not in granted["context"]
    assert granted["context"]["token"] == token
    assert refused["context"]["reason"] == "invalid_token"
    assert "token" not in refused["context"]
    assert str(invocation.modules["preview_tokens"]).startswith(str(LAYER_PYTHON))


def test_built_exchange_answers_a_redirect_with_the_session_cookie(
    built: BuiltFunctions, deployment: Deployment
) -> None:
    token = minted_token(built, deployment)
    event = load_event("exchange_mt", token=token)
    answer = built.invoke("PreviewAuthorizerFunction", authorizer_event(event)).results[0]
    # API Gateway hands the integration the authorizer's context (and principal id).
    event["requestContext"]["authorizer"] = {"principalId": answer["principalId"], **answer["context"]}

    invocation = built.invoke("ExchangeFunction", event)

    response = invocation.results[0]
    assert response["statusCode"] == 302, response
    cookies = response.get("multiValueHeaders", {}).get("Set-Cookie") or [response["headers"]["Set-Cookie"]]
    assert any(cookie.startswith("__Host-mp_session=mp_") for cookie in cookies)


def test_built_exchange_renders_the_denial_page_the_edge_routes_to(built: BuiltFunctions) -> None:
    event = load_event("exchange_denied", reason="expired", sandbox="sbx-abc123")

    response = built.invoke("ExchangeFunction", event).results[0]

    assert response["statusCode"] == 403, response
    assert '"reason": "expired"' in response["body"]
    assert "frame-ancestors" in response["headers"]["Content-Security-Policy"]
