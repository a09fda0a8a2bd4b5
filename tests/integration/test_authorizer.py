"""The data-plane authorizer with real REQUEST events against moto: who gets through, who does not."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import preview_authorizer
import pytest
from preview_local.edge import UNUSABLE_TOKEN
from preview_tokens.data_plane.denial_page import gateway_response_template

from tests.integration.conftest import clear_cold_start_caches
from tests.support.deployment import SANDBOX, Deployment, fleet_verifier
from tests.support.events import lambda_context, load_event, set_header
from tests.support.preview_tokens import authorizer_event, change_char, host_of, resigned, token_for

OTHER = "sbx-other"


def authorize(event: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = preview_authorizer.lambda_handler(event, lambda_context())
    return result


def effect(policy: dict[str, Any]) -> str:
    effects = {str(statement["Effect"]) for statement in policy["policyDocument"]["Statement"]}
    assert len(effects) == 1, policy
    return effects.pop()


def assert_denied(policy: dict[str, Any], reason: str) -> dict[str, Any]:
    assert effect(policy) == "Deny"
    context: dict[str, Any] = policy["context"]
    assert context["reason"] == reason
    assert {"denial_title", "denial_detail", "denial_event"} <= set(context)
    assert "sandbox_id" not in context
    assert "origin_cookie" not in context
    return context


# ------------------------------------------------------------------------------ allowed


def test_a_session_cookie_lets_a_subresource_through_with_the_origin_headers(deployment: Deployment) -> None:
    token = token_for(deployment, scope="read")
    policy = authorize(load_event("authorizer_cookie_get", token=token))

    assert effect(policy) == "Allow"
    context = dict(policy["context"])
    assertion = context.pop("origin_assertion")
    assert context == {
        "sandbox_id": SANDBOX,
        "scope": "read",
        "origin_cookie": "theme=dark; app_session=s%3Aabc",
    }
    assert fleet_verifier(deployment).verify(assertion, SANDBOX).scope == "read"
    resources = [r for s in policy["policyDocument"]["Statement"] for r in s["Resource"]]
    assert resources == ["arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/preview/GET/*"]
    assert token not in json.dumps(policy)


def test_mt_works_where_cookies_are_blocked_from_the_header_the_edge_puts_it_in(
    deployment: Deployment,
) -> None:
    token = token_for(deployment)
    policy = authorize(authorizer_event(token, via="header"))
    assert effect(policy) == "Allow"
    assert policy["context"]["origin_cookie"] == "theme=dark"


def test_the_recorded_fallback_event_is_allowed(deployment: Deployment) -> None:
    policy = authorize(load_event("authorizer_mt_query", token=token_for(deployment)))
    assert effect(policy) == "Allow"


def test_a_request_still_carrying_mt_in_its_query_bypassed_the_edge_and_is_denied(
    deployment: Deployment,
) -> None:
    # a valid session cookie too: it is the query that is refused, so the origin never gets mt
    assert_denied(
        authorize(load_event("authorizer_mt_in_query", token=token_for(deployment))), "invalid_token"
    )
    event = authorizer_event(token_for(deployment), via="query")
    assert_denied(authorize(event), "invalid_token")


def test_several_mt_values_are_refused_rather_than_one_picked(deployment: Deployment) -> None:
    token = token_for(deployment)
    # what the edge sends for ?mt=<token>&mt=<token>: never a token of its own
    assert_denied(authorize(authorizer_event(UNUSABLE_TOKEN, via="header")), "invalid_token")
    assert_denied(authorize(authorizer_event(f"{token},{token}", via="header")), "invalid_token")


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_a_read_token_may_view(deployment: Deployment, method: str) -> None:
    assert effect(authorize(authorizer_event(token_for(deployment), method=method))) == "Allow"


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/save"), ("DELETE", "/files/1"), ("POST", "/input/keys"), ("GET", "/input")],
)
def test_an_interact_token_may_post_and_use_the_input_channel(
    deployment: Deployment, method: str, path: str
) -> None:
    policy = authorize(authorizer_event(token_for(deployment, scope="interact"), method=method, path=path))
    assert effect(policy) == "Allow"
    assert policy["context"]["scope"] == "interact"


def test_the_recorded_read_post_event_is_allowed_for_interact(deployment: Deployment) -> None:
    token = token_for(deployment, scope="interact")
    assert effect(authorize(load_event("authorizer_read_post", token=token))) == "Allow"


@pytest.mark.parametrize("host", [host_of(SANDBOX).upper(), host_of(SANDBOX) + ":443"])
def test_the_own_host_matches_case_insensitively_and_with_a_port(deployment: Deployment, host: str) -> None:
    assert effect(authorize(authorizer_event(token_for(deployment), host=host))) == "Allow"


def test_a_token_of_a_rotated_out_key_still_verifies(deployment: Deployment) -> None:
    old = token_for(deployment)
    deployment.signing_keys.create(deployment.resources.kms_key_id)
    clear_cold_start_caches()
    assert effect(authorize(authorizer_event(old))) == "Allow"


# ------------------------------------------------------------------------------- denied


def test_no_token_is_denied(deployment: Deployment) -> None:
    context = assert_denied(authorize(load_event("authorizer_no_token")), "no_token")
    assert json.loads(context["denial_event"]) == {
        "type": "preview.denied",
        "sandbox_id": None,
        "reason": "no_token",
    }


@pytest.mark.parametrize(
    "garbage",
    ["garbage", "mp_", "mp_a.b.c", "mp_...", "eyJhbGciOiJIUzI1NiJ9.e30.abc", "mp_" + "A" * 5000, "mp_é.x.y"],
)
def test_garbage_is_denied(deployment: Deployment, garbage: str) -> None:
    context = assert_denied(authorize(authorizer_event(garbage)), "invalid_token")
    assert garbage not in json.dumps(context)


@pytest.mark.parametrize("part", [0, 1, 2], ids=["header", "payload", "signature"])
def test_one_changed_character_is_denied(deployment: Deployment, part: int) -> None:
    assert_denied(authorize(authorizer_event(change_char(token_for(deployment), part))), "invalid_token")


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
def test_other_algorithms_and_headers_are_denied(
    deployment: Deployment, header: dict[str, Any], digest: Any
) -> None:
    token = token_for(deployment)
    header = {k: (deployment.kid if v == "KID" else v) for k, v in header.items()}
    forged = resigned(token, header, deployment.signing_secret(deployment.kid), digest or hashlib.sha256)
    if digest is None:
        forged = forged.rsplit(".", 1)[0] + "."
    assert_denied(authorize(authorizer_event(forged)), "invalid_token")


def test_an_unknown_kid_is_denied(deployment: Deployment) -> None:
    token = token_for(deployment)
    forged = resigned(
        token, {"alg": "HS256", "kid": "k-unknown", "typ": "JWT"}, deployment.signing_secret(deployment.kid)
    )
    assert_denied(authorize(authorizer_event(forged)), "invalid_token")


def test_an_expired_token_is_denied_as_expired_with_its_proven_sandbox(deployment: Deployment) -> None:
    context = assert_denied(authorize(authorizer_event(token_for(deployment, expires_in=-1))), "expired")
    assert json.loads(context["denial_event"]) == {
        "type": "preview.expired",
        "sandbox_id": SANDBOX,
        "reason": "expired",
    }
    assert "expired" in context["denial_title"].lower()


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
def test_a_token_for_sandbox_a_is_denied_on_any_other_host(deployment: Deployment, host: str) -> None:
    context = assert_denied(authorize(authorizer_event(token_for(deployment), host=host)), "wrong_sandbox")
    assert json.loads(context["denial_event"])["sandbox_id"] is None


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_read_token_cannot_change_anything(deployment: Deployment, method: str) -> None:
    assert_denied(
        authorize(authorizer_event(token_for(deployment), method=method, path="/api/save")), "read_only"
    )


@pytest.mark.parametrize(
    "path",
    [
        "/input",
        "/input/keys",
        "/INPUT/keys",
        "//input/keys",
        "/static/../input/keys",
        "/%69nput/keys",
        "/input%2Fkeys",
        "/input;x=1/keys",
        "/input./keys",
        "/input%00/keys",
        "/%252569nput/keys",
        "/\uff49\uff4e\uff50\uff55\uff54/keys",
    ],
)
def test_a_read_token_cannot_touch_the_input_channel(deployment: Deployment, path: str) -> None:
    assert_denied(authorize(authorizer_event(token_for(deployment), path=path)), "read_only")


@pytest.mark.parametrize("header", ["X-HTTP-Method-Override", "x-method-override", "X-HTTP-METHOD"])
def test_a_read_token_cannot_override_its_method(deployment: Deployment, header: str) -> None:
    event = set_header(authorizer_event(token_for(deployment)), header, "DELETE")
    interact = set_header(authorizer_event(token_for(deployment, scope="interact")), header, "DELETE")

    assert_denied(authorize(event), "read_only")
    assert effect(authorize(interact)) == "Allow"


def test_every_repetition_of_an_override_header_is_checked(deployment: Deployment) -> None:
    event = set_header(authorizer_event(token_for(deployment)), "X-HTTP-Method-Override", "GET")
    event["multiValueHeaders"]["X-HTTP-Method-Override"] = ["POST", "GET"]  # headers keeps the last

    assert_denied(authorize(event), "read_only")


def test_a_read_token_still_reaches_paths_that_merely_start_like_the_input_channel(
    deployment: Deployment,
) -> None:
    assert effect(authorize(authorizer_event(token_for(deployment), path="/inputs.css"))) == "Allow"


def test_a_token_minted_before_its_key_was_retired_is_denied(deployment: Deployment) -> None:
    token = token_for(deployment)
    assert effect(authorize(authorizer_event(token))) == "Allow"  # verified and remembered
    deployment.signing_keys.create(deployment.resources.kms_key_id)
    deployment.signing_keys.retire(deployment.kid)
    clear_cold_start_caches()  # a warm authorizer re-reads the keys every SIGNING_KEYS_REFRESH_SECONDS
    assert_denied(authorize(authorizer_event(token)), "invalid_token")


def test_a_warm_authorizer_drops_a_retired_key_at_its_next_refresh(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNING_KEYS_REFRESH_SECONDS", "1")
    clear_cold_start_caches()
    token = token_for(deployment)
    assert effect(authorize(authorizer_event(token))) == "Allow"
    deployment.signing_keys.create(deployment.resources.kms_key_id)
    deployment.signing_keys.retire(deployment.kid)

    time.sleep(1.1)
    assert_denied(authorize(authorizer_event(token)), "invalid_token")


def assert_unavailable(event: dict[str, Any]) -> None:
    """API Gateway answers an authorizer error (other than "Unauthorized") with the 503 page."""
    with pytest.raises(preview_authorizer.PreviewsUnavailableError) as raised:
        authorize(event)
    assert str(raised.value) != "Unauthorized"


def test_kms_unreachable_is_unavailable_not_a_deny(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = token_for(deployment)
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", "http://127.0.0.1:9")
    clear_cold_start_caches()
    assert_unavailable(authorizer_event(token))


def test_a_missing_setting_is_unavailable(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    token = token_for(deployment)
    monkeypatch.delenv("SIGNING_KEYS_TABLE")
    clear_cold_start_caches()
    assert_unavailable(authorizer_event(token))


@pytest.mark.parametrize(
    "event",
    [{}, {"type": "REQUEST"}, {"headers": None, "methodArn": "arn:aws:execute-api:us-east-1:1:a/b/GET/"}],
    ids=["empty", "no-arn", "no-headers"],
)
def test_a_malformed_event_is_never_allowed(deployment: Deployment, event: dict[str, Any]) -> None:
    assert_unavailable(event)


# ---------------------------------------------------------------------- the denial page


def render_gateway_response(context: dict[str, Any]) -> str:
    """What API Gateway renders for ACCESS_DENIED: the template with the authorizer's context."""
    page = gateway_response_template()
    for key, value in context.items():
        page = page.replace(f"$context.authorizer.{key}", str(value))
    return page


def test_the_denial_page_for_an_expired_session_says_so_and_posts_preview_expired(
    deployment: Deployment,
) -> None:
    context = assert_denied(authorize(authorizer_event(token_for(deployment, expires_in=-5))), "expired")
    page = render_gateway_response(context)
    assert "Preview session expired" in page
    assert "$context" not in page
    assert '{"type": "preview.expired", "sandbox_id": "sbx-abc123", "reason": "expired"}' in page
    assert "postMessage" in page


def test_the_denial_page_for_an_invalid_link_echoes_nothing_from_the_request(deployment: Deployment) -> None:
    probe = "mp_<script>alert(1)</script>"
    event = authorizer_event(probe, path="/<img src=x onerror=alert(1)>")
    context = assert_denied(authorize(event), "invalid_token")
    page = render_gateway_response(context)
    assert "Preview link invalid" in page
    assert '{"type": "preview.denied", "sandbox_id": null, "reason": "invalid_token"}' in page
    for echoed in ("<script>alert", "onerror", "theme=dark", "Mozilla", "203.0.113.10", "/app/main.js"):
        assert echoed not in page


def test_after_the_session_cookie_expired_the_marker_makes_it_a_session_expired_page(
    deployment: Deployment,
) -> None:
    event = authorizer_event(None)
    event["headers"]["Cookie"] = f"theme=dark; __Host-mp_session_ends={int(time.time()) - 1}"
    context = assert_denied(authorize(event), "expired")
    assert json.loads(context["denial_event"]) == {
        "type": "preview.expired",
        "sandbox_id": None,
        "reason": "expired",
    }
