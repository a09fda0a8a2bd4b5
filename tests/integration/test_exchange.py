"""The ``?mt=`` exchange with real proxy events against moto: cookie, redirect, denial page."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from typing import Any

import pytest
from preview_local.edge import UNUSABLE_TOKEN
from preview_tokens.data_plane.denial_page import COOKIES_BLOCKED_SCRIPT_HASH

from tests.integration.conftest import clear_cold_start_caches
from tests.support.deployment import SANDBOX, Deployment
from tests.support.events import lambda_context, load_event, set_header
from tests.support.exchange import exchange_handler
from tests.support.preview_tokens import change_char, host_of, token_for
from tests.support.responses import HttpResponse, from_proxy_result


def exchange(event: dict[str, Any]) -> HttpResponse:
    return from_proxy_result(exchange_handler(event, lambda_context()))


def cookie_attributes(set_cookie: str) -> tuple[str, str, dict[str, str]]:
    pair, *attributes = [part.strip() for part in set_cookie.split(";")]
    name, _, value = pair.partition("=")
    parsed = {}
    for attribute in attributes:
        key, _, val = attribute.partition("=")
        parsed[key.lower()] = val
    return name, value, parsed


def jwt_exp(token: str) -> int:
    payload = token[3:].split(".")[1]
    exp: int = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"]
    return exp


def script_hash(script: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()


def embedded_event(page: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="preview-event">(.*?)</script>', page, re.S)
    assert match, page
    event: dict[str, Any] = json.loads(match.group(1))
    return event


def test_a_valid_mt_becomes_a_host_only_session_cookie_and_a_redirect_without_mt(
    deployment: Deployment,
) -> None:
    token = token_for(deployment, expires_in=900)
    response = exchange(load_event("exchange_mt", token=token))

    assert response.status == 302
    # first to the cookie check, which sends the browser on to /app/index.html?lang=en
    assert response.header("Location") == "/__preview/cookie-check/app/index.html?lang=en"
    session_cookie, ends_cookie, _origin_cookie = response.multi_header("Set-Cookie")
    name, value, attributes = cookie_attributes(session_cookie)
    assert (name, value) == ("__Host-mp_session", token)
    assert set(attributes) == {"max-age", "path", "secure", "httponly", "samesite", "partitioned"}
    assert attributes["path"] == "/"
    assert attributes["samesite"] == "None"
    assert 895 <= int(attributes["max-age"]) <= 900  # the token's remaining life
    assert "domain" not in attributes
    # beside it, no credential: when the session ends, outliving it so that a later request
    # is told "session expired" rather than "no token"
    marker_name, marker_value, marker_attributes = cookie_attributes(ends_cookie)
    assert marker_name == "__Host-mp_session_ends"
    assert token not in ends_cookie
    assert int(marker_value) == jwt_exp(token)
    assert int(marker_attributes["max-age"]) > int(attributes["max-age"])
    assert set(marker_attributes) == set(attributes)
    assert response.header("Cache-Control") == "no-store"
    assert response.header("Referrer-Policy") == "no-referrer"


def test_the_root_document_redirects_to_the_root(deployment: Deployment) -> None:
    response = exchange(load_event("exchange_mt_root", token=token_for(deployment)))
    assert response.status == 302
    assert response.header("Location") == "/__preview/cookie-check"


def test_the_redirect_never_leaves_the_sandbox_host(deployment: Deployment) -> None:
    event = load_event("exchange_mt", token=token_for(deployment))
    for proxy in ("/evil.example/x", "\\evil.example", "//evil.example"):
        event["pathParameters"] = {"proxy": proxy}
        location = exchange(event).header("Location") or ""
        assert location.startswith("/"), location
        assert not location.startswith(("//", "/\\")), location


def test_the_pages_of_the_data_plane_can_be_framed_by_the_configured_sites(deployment: Deployment) -> None:
    for token in (token_for(deployment), "garbage"):
        response = exchange(load_event("exchange_mt", token=token))
        assert "frame-ancestors https://app.example.com" in (response.header("Content-Security-Policy") or "")
        assert response.header("X-Frame-Options") is None


def test_an_expired_token_gets_the_session_expired_page(deployment: Deployment) -> None:
    response = exchange(load_event("exchange_mt", token=token_for(deployment, expires_in=-30)))

    assert response.status == 403
    assert (
        response.header(
            "Content-Type",
        )
        == "text/html; charset=utf-8"
    )
    assert response.header("Set-Cookie") is None
    assert "Preview session expired" in response.body
    assert embedded_event(response.body) == {
        "type": "preview.expired",
        "sandbox_id": SANDBOX,
        "reason": "expired",
    }


@pytest.mark.parametrize(
    "make_token",
    [lambda d: "mp_x<script>alert(1)</script>", lambda d: change_char(token_for(d), 2)],
    ids=["garbage-with-markup", "tampered-signature"],
)
def test_an_invalid_token_gets_the_invalid_link_page_echoing_nothing(
    deployment: Deployment, make_token: Any
) -> None:
    token = make_token(deployment)
    event = set_header(load_event("exchange_mt", token=token), "User-Agent", "<b>agent</b>")
    event["queryStringParameters"]["lang"] = "echo-probe-4711"
    event["multiValueQueryStringParameters"]["lang"] = ["echo-probe-4711"]
    response = exchange(event)

    assert response.status == 403
    assert "Preview link invalid" in response.body
    assert embedded_event(response.body) == {
        "type": "preview.denied",
        "sandbox_id": None,
        "reason": "invalid_token",
    }
    for echoed in (token, "<script>alert", "<b>agent</b>", "echo-probe-4711", "index.html"):
        assert echoed not in response.body


def test_a_token_opened_on_another_sandboxs_host_is_refused(deployment: Deployment) -> None:
    event = load_event("exchange_mt", token=token_for(deployment))
    event = set_header(event, "Host", host_of("sbx-other"))
    event["requestContext"]["domainName"] = host_of("sbx-other")
    response = exchange(event)
    assert response.status == 403
    assert embedded_event(response.body)["reason"] == "wrong_sandbox"


def test_no_mt_at_all_is_refused(deployment: Deployment) -> None:
    """API Gateway answers UNAUTHORIZED without X-Preview-Token (test_local_gateway); an exchange
    reached without the authorizer's context anyway fails closed."""
    event = load_event("exchange_mt_root", token="")
    event["queryStringParameters"] = event["multiValueQueryStringParameters"] = None
    response = exchange(event)
    assert response.status == 403
    assert response.header("Set-Cookie") is None
    assert embedded_event(response.body)["reason"] == "invalid_token"


@pytest.mark.parametrize(
    "endpoint", ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_KMS"], ids=["dynamodb", "kms"]
)
def test_signing_keys_unreachable_is_a_503_page_not_a_500(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch, endpoint: str
) -> None:
    """The ?mt= authorizer cannot read (DynamoDB) or decrypt (KMS) the keys: unavailable, not a refusal."""
    token = token_for(deployment)
    monkeypatch.setenv(endpoint, "http://127.0.0.1:9")
    clear_cold_start_caches()
    started = time.monotonic()
    response = exchange(load_event("exchange_mt", token=token))
    assert response.status == 503
    assert embedded_event(response.body)["reason"] == "unavailable"
    assert time.monotonic() - started < 5


def test_the_token_is_read_from_the_edges_header_whatever_the_query_says(deployment: Deployment) -> None:
    token = token_for(deployment)
    # mt left in the query without the edge's header: not exchanged (the query is never read)
    event = set_header(load_event("exchange_mt_root", token=""), "x-preview-token", None)
    event["queryStringParameters"] = {"mt": token}
    event["multiValueQueryStringParameters"] = {"mt": [token]}
    assert embedded_event(exchange(event).body)["reason"] == "invalid_token"
    # the header, whatever its case
    event = set_header(load_event("exchange_mt_root", token=""), "X-Preview-Token", token)
    assert exchange(event).status == 302


def test_a_link_with_several_mt_values_is_an_invalid_link_not_one_of_them(deployment: Deployment) -> None:
    # ?mt=<token>&mt=<token>: the edge passes "invalid" rather than choose one
    response = exchange(load_event("exchange_mt", token=UNUSABLE_TOKEN))
    assert response.status == 403
    assert response.header("Set-Cookie") is None
    assert embedded_event(response.body)["reason"] == "invalid_token"


# ------------------------------------------------------------------------ the cookie check


def test_when_the_session_cookie_came_back_the_check_sends_the_browser_on_to_the_page(
    deployment: Deployment,
) -> None:
    token = token_for(deployment)
    response = exchange(load_event("exchange_cookie_check", token=token))

    assert response.status == 302
    assert response.header("Location") == "/app/index.html?lang=en"
    assert response.header("Set-Cookie") is None
    assert response.header("Cache-Control") == "no-store"


def test_the_session_ends_marker_alone_proves_cookies_work(deployment: Deployment) -> None:
    """A session that ended between the exchange and the check is "expired" at the page, not "blocked"."""
    event = set_header(load_event("exchange_cookie_check", token="t"), "Cookie", "__Host-mp_session_ends=1")
    assert exchange(event).header("Location") == "/app/index.html?lang=en"


@pytest.mark.parametrize("cookie", [None, "", "theme=dark", "__Host-mp_session=", "mp_session=mp_x"])
def test_without_the_session_cookie_the_check_answers_the_cookies_blocked_page(
    deployment: Deployment, cookie: str | None
) -> None:
    event = set_header(load_event("exchange_cookie_check", token="t"), "Cookie", cookie)
    response = exchange(event)

    assert response.status == 403
    assert response.header("Location") is None
    assert embedded_event(response.body) == {
        "type": "preview.denied",
        "sandbox_id": None,
        "reason": "cookies_blocked",
    }
    assert "<h1>Cookies blocked</h1>" in response.body
    assert 'id="open-in-new-tab"' in response.body
    # the button's script is allowed by its hash, nothing else
    policy = response.header("Content-Security-Policy") or ""
    assert f"script-src '{COOKIES_BLOCKED_SCRIPT_HASH}';" in policy
    scripts = re.findall(r"<script>(.*?)</script>", response.body, re.S)
    assert [script_hash(script) for script in scripts] == [COOKIES_BLOCKED_SCRIPT_HASH]
    assert "frame-ancestors https://app.example.com" in policy
    assert response.header("Cache-Control") == "no-store"


def test_cookies_split_over_several_headers_are_all_read(deployment: Deployment) -> None:
    event = load_event("exchange_cookie_check", token="t")
    event["multiValueHeaders"]["Cookie"] = ["theme=dark", "__Host-mp_session=mp_x"]
    assert exchange(event).status == 302


def test_the_check_redirects_only_within_the_sandbox_host(deployment: Deployment) -> None:
    event = load_event("exchange_cookie_check", token="t")
    for proxy in ("/evil.example/x", "\\evil.example", "//evil.example"):
        event["pathParameters"] = {"proxy": proxy}
        location = exchange(event).header("Location") or ""
        assert location.startswith("/"), location
        assert not location.startswith(("//", "/\\")), location
