"""The origin assertion end to end with the real handlers against moto.

The exchange route's authorizer signs it for a verified ``?mt=`` token, the exchange sets it as
``__Host-mp_origin`` (the edge forwards it as ``X-Preview-Assertion``), the control plane publishes
the keys at ``GET /api/v1/origin-keys``, and the fleet's verifier (``preview_origin``) accepts it
for its sandbox only.
"""

from __future__ import annotations

import exchange_authorizer
import mint_api
import pytest
from preview_origin import AssertionRejectedError, OriginAssertionVerifier, StaticJwks
from preview_tokens.data_plane.access import PreviewGate
from preview_tokens.keys.signing_keys import DynamoDbSigningKeyStore, KmsKeyDecrypter, SigningKeyProvider

from tests.integration.conftest import clear_cold_start_caches
from tests.support.deployment import SANDBOX, Deployment, fleet_verifier
from tests.support.events import lambda_context, load_event
from tests.support.exchange import authorize, exchange_handler
from tests.support.preview_tokens import token_for
from tests.support.responses import HttpResponse, from_proxy_result


def exchange(token: str) -> HttpResponse:
    return from_proxy_result(exchange_handler(load_event("exchange_mt", token=token), lambda_context()))


def published_keys() -> HttpResponse:
    return from_proxy_result(mint_api.lambda_handler(load_event("origin_keys"), lambda_context()))


def cookies_set(response: HttpResponse) -> dict[str, tuple[str, str]]:
    """name -> (value, attributes) of every Set-Cookie."""
    found = {}
    for set_cookie in response.multi_header("Set-Cookie"):
        pair, _, attributes = set_cookie.partition(";")
        name, _, value = pair.partition("=")
        found[name] = (value, attributes.strip())
    return found


# ----------------------------------------------------------------------- the published keys
def test_the_control_plane_publishes_the_origin_keys_without_a_credential(deployment: Deployment) -> None:
    response = published_keys()

    assert response.status == 200
    assert response.header("Cache-Control") == "public, max-age=300"
    (jwk,) = response.json()["keys"]
    assert jwk["kid"] == deployment.origin_kid
    assert {k: jwk[k] for k in ("kty", "crv", "alg", "use")} == {
        "kty": "OKP",
        "crv": "Ed25519",
        "alg": "EdDSA",
        "use": "sig",
    }
    assert set(jwk) == {"kty", "crv", "alg", "use", "kid", "x"}  # the public half only


def test_a_rotated_key_is_published_beside_the_old_one_and_a_retired_key_is_not(
    deployment: Deployment,
) -> None:
    new_kid = deployment.origin_keys.create(deployment.resources.kms_key_id)["kid"]
    assert {jwk["kid"] for jwk in published_keys().json()["keys"]} == {deployment.origin_kid, new_kid}

    deployment.origin_keys.retire(deployment.origin_kid)

    assert {jwk["kid"] for jwk in published_keys().json()["keys"]} == {new_kid}


# -------------------------------------------------------------------------------- exchange
def test_the_exchange_sets_the_tokens_origin_assertion_as_a_cookie_like_the_session(
    deployment: Deployment,
) -> None:
    token = token_for(deployment, scope="interact", expires_in=900)

    cookies = cookies_set(exchange(token))

    assertion, attributes = cookies["__Host-mp_origin"]
    assert attributes == cookies["__Host-mp_session"][1]  # same attributes, same Max-Age
    accepted = fleet_verifier(deployment).verify(assertion, SANDBOX)
    assert accepted.scope == "interact"
    assert token not in assertion


def test_without_an_origin_key_the_exchange_is_unavailable(deployment: Deployment) -> None:
    deployment.origin_keys.retire(deployment.origin_kid)
    clear_cold_start_caches()

    response = exchange(token_for(deployment))

    assert response.status == 503
    assert response.multi_header("Set-Cookie") == []


# ------------------------------------------------------------------- the ?mt= authorizer
def test_the_exchange_authorizer_grants_an_assertion_of_the_tokens_scope(deployment: Deployment) -> None:
    token = token_for(deployment, scope="interact")

    context = authorize(load_event("exchange_mt", token=token))["context"]

    assert fleet_verifier(deployment).verify(context["origin_assertion"], SANDBOX).scope == "interact"


def test_the_assertion_is_for_this_sandbox_and_this_audience_only(deployment: Deployment) -> None:
    assertion = authorize(load_event("exchange_mt", token=token_for(deployment)))["context"][
        "origin_assertion"
    ]

    with pytest.raises(AssertionRejectedError, match="wrong_sandbox"):
        fleet_verifier(deployment).verify(assertion, "sbx-other")
    other_fleet = OriginAssertionVerifier(
        StaticJwks(deployment.origin_keys.jwks()), "https://other.example.com"
    )
    with pytest.raises(AssertionRejectedError, match="audience"):
        other_fleet.verify(assertion, SANDBOX)
    assert fleet_verifier(deployment).verify(assertion, SANDBOX).sandbox_id == SANDBOX


def test_a_gate_wired_without_the_assertion_signer_grants_nothing(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wiring mistake (no origin key signer) must not grant a session the edge would then refuse
    as an invalid link: the viewer gets "unavailable" (503) and no cookie."""
    keys = SigningKeyProvider(
        DynamoDbSigningKeyStore(deployment.resources.tables["SigningKeysTable"]), KmsKeyDecrypter(), 60
    )
    monkeypatch.setattr(exchange_authorizer, "preview_gate", lambda: PreviewGate(keys, "/input"))

    context = authorize(load_event("exchange_mt", token=token_for(deployment)))["context"]

    assert context["reason"] == "unavailable"
    assert "origin_assertion" not in context
    assert "token" not in context
