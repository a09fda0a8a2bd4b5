"""The origin assertion end to end with the real handlers against moto.

The exchange sets it as ``__Host-mp_origin``, the authorizer puts it in its Allow context (mapped
to ``X-Preview-Assertion``), the control plane publishes the keys at ``GET /api/v1/origin-keys``,
and the fleet's verifier (``preview_origin``) accepts it for its sandbox only. Our cookies never
reach what the origin is given.
"""

from __future__ import annotations

from typing import Any

import mint_api
import preview_authorizer
import pytest
from preview_origin import AssertionRejectedError, OriginAssertionVerifier, StaticJwks
from preview_tokens.data_plane.access import NO_APP_COOKIES, PreviewGate
from preview_tokens.keys.signing_keys import DynamoDbSigningKeyStore, KmsKeyDecrypter, SigningKeyProvider

from tests.integration.conftest import clear_cold_start_caches
from tests.support.deployment import SANDBOX, Deployment, fleet_verifier
from tests.support.events import lambda_context, load_event
from tests.support.exchange import exchange_handler
from tests.support.preview_tokens import authorizer_event, token_for
from tests.support.responses import HttpResponse, from_proxy_result


def authorize(event: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = preview_authorizer.lambda_handler(event, lambda_context())
    return result


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


def with_cookies(
    token: str, cookie_header: str, method: str = "GET", path: str = "/app/main.js"
) -> dict[str, Any]:
    event = authorizer_event(token, method=method, path=path)
    event["headers"]["Cookie"] = cookie_header
    event["multiValueHeaders"]["Cookie"] = [cookie_header]
    return event


def allowed_context(policy: dict[str, Any]) -> dict[str, Any]:
    assert policy["policyDocument"]["Statement"][0]["Effect"] == "Allow", policy.get("context")
    context: dict[str, Any] = policy["context"]
    return context


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


# ------------------------------------------------------------------------------ authorizer
def test_the_authorizer_forwards_the_exchanges_assertion_for_the_same_token(deployment: Deployment) -> None:
    token = token_for(deployment)
    cookies = cookies_set(exchange(token))
    assertion = cookies["__Host-mp_origin"][0]

    context = allowed_context(
        authorize(with_cookies(token, f"theme=dark; __Host-mp_session={token}; __Host-mp_origin={assertion}"))
    )

    assert context["origin_assertion"] == assertion


def test_a_cookie_assertion_of_another_session_is_not_forwarded(deployment: Deployment) -> None:
    """A stolen assertion (another token, another sandbox) in the cookie is replaced by this token's."""
    token, other = token_for(deployment), token_for(deployment, scope="interact")
    others_assertion = cookies_set(exchange(other))["__Host-mp_origin"][0]

    context = allowed_context(
        authorize(with_cookies(token, f"__Host-mp_session={token}; __Host-mp_origin={others_assertion}"))
    )

    assert context["origin_assertion"] != others_assertion
    accepted = fleet_verifier(deployment).verify(context["origin_assertion"], SANDBOX)
    assert accepted.scope == "read"


def test_a_request_with_the_token_outside_a_cookie_gets_an_assertion_too(deployment: Deployment) -> None:
    token = token_for(deployment, scope="interact")

    context = allowed_context(
        authorize(authorizer_event(token, method="POST", path="/api/save", via="header"))
    )

    assert fleet_verifier(deployment).verify(context["origin_assertion"], SANDBOX).scope == "interact"


def test_the_assertion_is_for_this_sandbox_and_this_audience_only(deployment: Deployment) -> None:
    assertion = allowed_context(authorize(authorizer_event(token_for(deployment))))["origin_assertion"]

    with pytest.raises(AssertionRejectedError, match="wrong_sandbox"):
        fleet_verifier(deployment).verify(assertion, "sbx-other")
    other_fleet = OriginAssertionVerifier(
        StaticJwks(deployment.origin_keys.jwks()), "https://other.example.com"
    )
    with pytest.raises(AssertionRejectedError, match="audience"):
        other_fleet.verify(assertion, SANDBOX)
    assert fleet_verifier(deployment).verify(assertion, SANDBOX).sandbox_id == SANDBOX


def test_an_allow_without_an_assertion_is_never_sent(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gate wired without the signer (a wiring mistake) must not let an unsigned request through."""
    keys = SigningKeyProvider(
        DynamoDbSigningKeyStore(deployment.resources.tables["SigningKeysTable"]), KmsKeyDecrypter(), 60
    )
    unsigned_gate = PreviewGate(keys, "/input")
    monkeypatch.setattr(preview_authorizer, "preview_gate", lambda: unsigned_gate)

    # "unavailable" is API Gateway's AUTHORIZER_CONFIGURATION_ERROR: the 503 page, never an Allow
    with pytest.raises(preview_authorizer.PreviewsUnavailableError):
        authorize(authorizer_event(token_for(deployment)))


def test_without_an_origin_key_the_authorizer_answers_unavailable(deployment: Deployment) -> None:
    deployment.origin_keys.retire(deployment.origin_kid)
    clear_cold_start_caches()

    with pytest.raises(preview_authorizer.PreviewsUnavailableError):
        authorize(authorizer_event(token_for(deployment)))


# ------------------------------------------------------------------------- our cookies
@pytest.mark.parametrize(("method", "path"), [("GET", "/"), ("GET", "/app/main.js"), ("POST", "/api/save")])
def test_none_of_our_cookies_is_ever_given_to_the_origin(
    deployment: Deployment, method: str, path: str
) -> None:
    token = token_for(deployment, scope="interact")
    assertion = cookies_set(exchange(token))["__Host-mp_origin"][0]
    header = (
        f"theme=dark; __Host-mp_session={token}; app=1; __Host-mp_session_ends=1999999999; "
        f"__Host-mp_origin={assertion}; __Host-mp_future=x; __host-mp_session={token}; last=2"
    )

    context = allowed_context(authorize(with_cookies(token, header, method, path)))

    assert context["origin_cookie"] == "theme=dark; app=1; last=2"
    assert "mp_" not in context["origin_cookie"].replace("mp_no_app_cookies", "")


def test_a_request_with_only_our_cookies_gives_the_origin_a_placeholder_never_an_empty_cookie(
    deployment: Deployment,
) -> None:
    token = token_for(deployment)

    context = allowed_context(
        authorize(with_cookies(token, f"__Host-mp_session={token}; __Host-mp_origin=x.y.z"))
    )

    assert context["origin_cookie"] == NO_APP_COOKIES
