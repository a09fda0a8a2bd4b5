"""The exchange's renewal path (issue 14): a new token in the embed helper's hidden frame.

The hidden frame opens ``/__preview/exchange/__preview/renewed?mt=<new token>`` in the partition
the visible preview shares. The exchange sets the new session's cookies there exactly as for a
first open, and the cookie check answers the "renewed" page (posting ``preview.renewed`` with the
new session's end) instead of sending the frame to a sandbox page.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from preview_tokens.data_plane.denial_page import SCRIPT_HASH

from tests.integration.test_exchange import cookie_attributes, embedded_event, jwt_exp
from tests.support.deployment import Deployment
from tests.support.events import lambda_context, load_event, set_header
from tests.support.exchange import exchange_handler
from tests.support.preview_tokens import host_of, token_for
from tests.support.responses import HttpResponse, from_proxy_result

RENEWED = "__preview/renewed"


def exchange(event: dict[str, Any]) -> HttpResponse:
    return from_proxy_result(exchange_handler(event, lambda_context()))


def at_renewal_path(event: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The event for ``prefix``/__preview/renewed with no query but what the edge left."""
    changed = copy.deepcopy(event)
    changed["path"] = f"{prefix}/{RENEWED}"
    changed["pathParameters"] = {"proxy": RENEWED}
    changed["queryStringParameters"] = None
    changed["multiValueQueryStringParameters"] = None
    return changed


def test_a_renewal_sets_the_new_sessions_cookies_and_goes_to_the_renewal_check(
    deployment: Deployment,
) -> None:
    token = token_for(deployment, expires_in=600)
    response = exchange(at_renewal_path(load_event("exchange_mt", token=token), "/__preview/exchange"))

    assert response.status == 302
    assert response.header("Location") == f"/__preview/cookie-check/{RENEWED}"
    session_cookie, ends_cookie, origin_cookie = response.multi_header("Set-Cookie")
    assert cookie_attributes(session_cookie)[:2] == ("__Host-mp_session", token)
    assert cookie_attributes(ends_cookie)[:2] == ("__Host-mp_session_ends", str(jwt_exp(token)))
    assert cookie_attributes(origin_cookie)[0] == "__Host-mp_origin"
    for cookie in (session_cookie, ends_cookie, origin_cookie):
        assert "Partitioned" in cookie
        assert "SameSite=None" in cookie


def test_the_renewal_check_answers_the_renewed_page_with_the_new_sessions_end(
    deployment: Deployment,
) -> None:
    token = token_for(deployment, expires_in=600)
    event = at_renewal_path(load_event("exchange_cookie_check", token=token), "/__preview/cookie-check")
    event = set_header(event, "Cookie", f"__Host-mp_session={token}; __Host-mp_session_ends={jwt_exp(token)}")
    response = exchange(event)

    assert response.status == 200
    assert response.header("Location") is None
    assert response.header("Set-Cookie") is None
    assert response.header("Cache-Control") == "no-store"
    assert f"script-src '{SCRIPT_HASH}'" in (response.header("Content-Security-Policy") or "")
    assert embedded_event(response.body) == {
        "type": "preview.renewed",
        "sandbox_id": None,
        "reason": None,
        "expires_at": jwt_exp(token),
    }
    assert token not in response.body


def test_a_renewal_whose_cookie_did_not_stick_is_told_cookies_blocked(deployment: Deployment) -> None:
    event = at_renewal_path(load_event("exchange_cookie_check", token="t"), "/__preview/cookie-check")
    response = exchange(set_header(event, "Cookie", "app=1"))

    assert response.status == 403
    assert embedded_event(response.body)["reason"] == "cookies_blocked"


def test_a_renewal_with_a_token_that_no_longer_holds_gets_its_denial_page(deployment: Deployment) -> None:
    cases = {
        "expired": token_for(deployment, expires_in=-30),
        "wrong_sandbox": token_for(deployment),
    }
    for reason, token in cases.items():
        event = at_renewal_path(load_event("exchange_mt", token=token), "/__preview/exchange")
        if reason == "wrong_sandbox":
            event = set_header(event, "Host", host_of("sbx-other"))
        response = exchange(event)
        assert response.status == 403, reason
        assert response.header("Set-Cookie") is None
        assert embedded_event(response.body)["reason"] == reason


def test_the_renewed_page_reflects_nothing_from_the_request(deployment: Deployment) -> None:
    event = at_renewal_path(load_event("exchange_cookie_check", token="t"), "/__preview/cookie-check")
    event = set_header(event, "Cookie", "__Host-mp_session_ends=<script>; __Host-mp_session=x</script>")
    response = exchange(event)

    assert response.status == 200
    assert "<script>;" not in response.body
    assert "x</script>" not in response.body
    match = re.search(r'id="preview-event">(.*?)</script>', response.body, re.S)
    assert match
    assert json.loads(match.group(1))["expires_at"] is None
