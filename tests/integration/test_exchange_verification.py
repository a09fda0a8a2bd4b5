"""The ``?mt=`` token's verification by the exchange route's authorizer, with real events against moto.

``exchange_authorizer`` is the data plane's only Lambda verifier (once per preview open): a token
is granted (the context carries it, its claims and its origin assertion: test_origin_assertion.py)
or refused with a reason, which the exchange renders (test_exchange.py, where unreachable keys are
a 503 too). Pinned algorithm and ``kid``, signature, expiry, host binding, key rotation and
retirement, and the failures that must be "unavailable" rather than a refusal. Scope, the input
channel and the session cookie are decided per request at the edge and by the fleet ingress
(tests/vectors/edge_access.json, tests/ingress/).
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import exchange_authorizer
import pytest
from preview_tokens.data_plane.authorizer_answer import PreviewsUnavailableError

from tests.integration.conftest import clear_cold_start_caches
from tests.support.deployment import SANDBOX, Deployment
from tests.support.events import lambda_context, load_event, set_header
from tests.support.exchange import API_STAGE_ARN, authorize, exchange_handler
from tests.support.preview_tokens import change_char, host_of, resigned, token_for

OTHER = "sbx-other"


def mt_event(token: str, host: str = host_of(SANDBOX)) -> dict[str, Any]:
    """``GET /__preview/exchange/...`` as the edge routes a ``?mt=`` link opened on ``host``."""
    event = set_header(load_event("exchange_mt", token=token), "Host", host)
    event["requestContext"]["domainName"] = host.split(":")[0]
    return event


def verdict(token: str, host: str = host_of(SANDBOX)) -> dict[str, Any]:
    """The authorizer's context for ``token`` (its answer is always an Allow)."""
    context: dict[str, Any] = authorize(mt_event(token, host))["context"]
    return context


def assert_granted(context: dict[str, Any]) -> None:
    assert "reason" not in context, context
    assert context["sandbox_id"] == SANDBOX
    assert context["token"]


def assert_refused(context: dict[str, Any], reason: str) -> dict[str, Any]:
    assert context["reason"] == reason
    assert "token" not in context
    assert "claims" not in context
    assert "origin_assertion" not in context
    return context


# ------------------------------------------------------------------------------ granted


def test_a_grant_is_an_allow_for_the_requests_method_on_this_stage_only(deployment: Deployment) -> None:
    answer = authorize(mt_event(token_for(deployment)))

    assert answer["principalId"] == SANDBOX
    resources = [r for s in answer["policyDocument"]["Statement"] for r in s["Resource"]]
    assert resources == [f"{API_STAGE_ARN}/GET/*"]
    assert_granted(answer["context"])


@pytest.mark.parametrize("host", [host_of(SANDBOX).upper(), host_of(SANDBOX) + ":443"])
def test_the_own_host_matches_case_insensitively_and_with_a_port(deployment: Deployment, host: str) -> None:
    assert_granted(verdict(token_for(deployment), host=host))


def test_a_token_of_a_rotated_out_key_still_verifies(deployment: Deployment) -> None:
    old = token_for(deployment)
    deployment.signing_keys.create(deployment.resources.kms_key_id)
    clear_cold_start_caches()
    assert_granted(verdict(old))


# ------------------------------------------------------------------------------ refused


def test_a_header_carrying_two_tokens_is_refused_rather_than_one_picked(deployment: Deployment) -> None:
    token = token_for(deployment)
    assert_refused(verdict(f"{token},{token}"), "invalid_token")


@pytest.mark.parametrize(
    "garbage",
    ["garbage", "mp_", "mp_a.b.c", "mp_...", "eyJhbGciOiJIUzI1NiJ9.e30.abc", "mp_" + "A" * 5000, "mp_é.x.y"],
)
def test_garbage_is_refused_and_not_echoed(deployment: Deployment, garbage: str) -> None:
    context = assert_refused(verdict(garbage), "invalid_token")
    assert garbage not in json.dumps(context)


@pytest.mark.parametrize("part", [0, 1, 2], ids=["header", "payload", "signature"])
def test_one_changed_character_is_refused(deployment: Deployment, part: int) -> None:
    assert_refused(verdict(change_char(token_for(deployment), part)), "invalid_token")


@pytest.mark.parametrize(
    ("header", "digest"),
    [
        ({"alg": "none", "kid": "KID", "typ": "JWT"}, None),
        ({"alg": "HS512", "kid": "KID", "typ": "JWT"}, hashlib.sha512),
        ({"alg": "RS256", "kid": "KID", "typ": "JWT"}, hashlib.sha256),
        ({"alg": "HS256", "typ": "JWT"}, hashlib.sha256),
        ({"alg": "HS256", "kid": "KID", "typ": "JWT", "jku": "https://evil.test/"}, hashlib.sha256),
    ],
    ids=["alg-none", "HS512", "RS256", "no-kid", "extra-header"],
)
def test_other_algorithms_and_headers_are_refused(
    deployment: Deployment, header: dict[str, Any], digest: Any
) -> None:
    token = token_for(deployment)
    header = {k: (deployment.kid if v == "KID" else v) for k, v in header.items()}
    forged = resigned(token, header, deployment.signing_secret(deployment.kid), digest or hashlib.sha256)
    if digest is None:
        forged = forged.rsplit(".", 1)[0] + "."
    assert_refused(verdict(forged), "invalid_token")


def test_an_unknown_kid_is_refused(deployment: Deployment) -> None:
    token = token_for(deployment)
    forged = resigned(
        token, {"alg": "HS256", "kid": "k-unknown", "typ": "JWT"}, deployment.signing_secret(deployment.kid)
    )
    assert_refused(verdict(forged), "invalid_token")


@pytest.mark.parametrize(
    "host",
    [
        host_of(OTHER),
        host_of(OTHER).upper(),
        host_of(OTHER) + ".",
        host_of(OTHER) + ":8443",
        host_of(SANDBOX) + ".evil.test",
        host_of(SANDBOX) + ".",
        "evil.test",
        "",
    ],
)
def test_a_token_for_sandbox_a_is_refused_on_any_other_host(deployment: Deployment, host: str) -> None:
    context = assert_refused(verdict(token_for(deployment), host=host), "wrong_sandbox")
    assert context["sandbox_id"] == ""  # a token presented elsewhere proves no sandbox


def test_a_token_minted_before_its_key_was_retired_is_refused(deployment: Deployment) -> None:
    token = token_for(deployment)
    assert_granted(verdict(token))  # verified and remembered
    deployment.signing_keys.create(deployment.resources.kms_key_id)
    deployment.signing_keys.retire(deployment.kid)
    clear_cold_start_caches()  # a warm authorizer re-reads the keys every SIGNING_KEYS_REFRESH_SECONDS
    assert_refused(verdict(token), "invalid_token")


def test_a_warm_authorizer_drops_a_retired_key_at_its_next_refresh(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNING_KEYS_REFRESH_SECONDS", "1")
    clear_cold_start_caches()
    token = token_for(deployment)
    assert_granted(verdict(token))
    deployment.signing_keys.create(deployment.resources.kms_key_id)
    deployment.signing_keys.retire(deployment.kid)

    time.sleep(1.1)
    assert_refused(verdict(token), "invalid_token")


# ---------------------------------------------------------------------------- unavailable


def test_a_missing_setting_is_unavailable(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    token = token_for(deployment)
    monkeypatch.delenv("SIGNING_KEYS_TABLE")
    clear_cold_start_caches()
    assert_refused(verdict(token), "unavailable")

    # The exchange shares the setting: it still answers the 503 page (frame-ancestors 'none'), not a 500.
    response = exchange_handler(load_event("exchange_mt", token=token), lambda_context())
    assert response["statusCode"] == 503
    assert "frame-ancestors" in response["headers"]["Content-Security-Policy"]
    assert "Set-Cookie" not in response["headers"]


@pytest.mark.parametrize(
    "event",
    [{}, {"type": "REQUEST"}, {"headers": None, "methodArn": "arn:aws:execute-api:us-east-1:1:a/b/GET/"}],
    ids=["empty", "no-arn", "no-method"],
)
def test_a_malformed_event_is_never_allowed(deployment: Deployment, event: dict[str, Any]) -> None:
    """No Allow can be scoped: API Gateway's AUTHORIZER_CONFIGURATION_ERROR, the 503 page."""
    with pytest.raises(PreviewsUnavailableError) as raised:
        exchange_authorizer.lambda_handler(event, lambda_context())
    assert str(raised.value) != "Unauthorized"
