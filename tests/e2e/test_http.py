"""The local stack over plain HTTP, as curl would see it: the mint API and the preview host."""

from __future__ import annotations

import re

import pytest
from preview_local.embed_script import EMBED_SCRIPT_FILE, embed_script
from preview_tokens.data_plane.access import SESSION_COOKIE

from tests.e2e.local_stack import LocalStack, Reply, fetch

pytestmark = pytest.mark.e2e


def minted(stack: LocalStack, scope: str = "read", sandbox_id: str = "") -> dict[str, str]:
    reply = stack.mint(stack.demo["api_key"], sandbox_id or stack.demo["sandbox_id"], {"scope": scope})
    assert reply.status == 200, reply.text
    document: dict[str, str] = reply.json()
    return document


def session_cookie(exchange: Reply) -> str:
    """``name=value; ...`` of the cookies an exchange answer sets: the session first, and its
    origin assertion (``__Host-mp_origin``), without which the edge admits no request."""
    set_cookies = exchange.headers.get_all("Set-Cookie", [])
    assert set_cookies[0].startswith(f"{SESSION_COOKIE}=mp_")
    return "; ".join(value.split(";", 1)[0] for value in set_cookies)


def test_an_api_key_with_previews_write_mints(stack: LocalStack) -> None:
    reply = stack.mint(stack.demo["api_key"], stack.demo["sandbox_id"], {"scope": "read", "expires_in": 600})

    assert reply.status == 200
    body = reply.json()
    assert set(body) == {"token", "url", "expires_at", "scope", "id"}
    assert body["url"] == f"{stack.preview_origin(stack.demo['sandbox_id'])}?mt={body['token']}"
    assert body["token"].startswith("mp_")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["expires_at"])
    assert body["scope"] == "read"
    assert reply.headers["X-Request-Id"]


def test_a_jwt_from_the_trusted_issuer_mints(stack: LocalStack) -> None:
    reply = stack.mint(stack.demo["jwt"], stack.demo["sandbox_id"], {"scope": "interact"})

    assert reply.status == 200, reply.text
    assert reply.json()["scope"] == "interact"


def test_a_key_without_previews_write_is_forbidden(stack: LocalStack) -> None:
    reply = stack.mint(stack.demo["api_key_without_scope"], stack.demo["sandbox_id"])

    assert reply.status == 403
    assert reply.json()["error"]["code"] == "forbidden"


def test_another_tenants_sandbox_is_not_found(stack: LocalStack) -> None:
    reply = stack.mint(stack.demo["api_key"], stack.demo["other_tenant_sandbox_id"])

    assert reply.status == 404
    assert reply.json()["error"]["code"] == "sandbox_not_found"


def test_a_route_the_template_does_not_declare_gets_the_templates_gateway_response(stack: LocalStack) -> None:
    reply = fetch(f"{stack.api_url}/api/v1/sandboxes/{stack.demo['sandbox_id']}/preview-token")  # GET

    assert reply.status == 404
    assert reply.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(("method", "path"), [("GET", "/__preview/nothing-here"), ("POST", "/?mt=mp_x")])
def test_a_preview_request_with_no_route_gets_the_denial_page_with_frame_ancestors(
    stack: LocalStack, method: str, path: str
) -> None:
    reply = fetch(f"{stack.preview_origin(stack.demo['sandbox_id'])}{path}", method=method)

    assert reply.status == 403
    assert '"reason": "no_token"' in reply.text
    assert "frame-ancestors" in reply.headers["Content-Security-Policy"]


def test_opening_a_preview_url_redirects_without_mt_and_sets_a_host_only_session_cookie(
    stack: LocalStack,
) -> None:
    url = minted(stack)["url"]

    reply = fetch(url)

    assert reply.status == 302
    assert reply.headers["Location"] == "/__preview/cookie-check"  # which sends it on to "/"
    attributes = [part.strip() for part in reply.headers["Set-Cookie"].split(";")]
    assert {"Path=/", "Secure", "HttpOnly", "SameSite=None", "Partitioned"} <= set(attributes)
    assert not any(attribute.lower().startswith("domain=") for attribute in attributes)
    assert reply.headers["Cache-Control"] == "no-store"
    assert reply.headers["Referrer-Policy"] == "no-referrer"


def test_the_cookie_check_sends_a_browser_with_the_cookie_on_and_tells_one_without_it(
    stack: LocalStack,
) -> None:
    origin = stack.preview_origin(stack.demo["sandbox_id"])
    exchanged = fetch(minted(stack)["url"] + "&lang=en")
    check_url = origin + exchanged.headers["Location"]

    with_cookie = fetch(check_url, headers={"Cookie": session_cookie(exchanged)})
    without = fetch(check_url)

    assert exchanged.headers["Location"] == "/__preview/cookie-check?lang=en"
    assert (with_cookie.status, with_cookie.headers["Location"]) == (302, "/?lang=en")
    assert without.status == 403
    assert "<h1>Cookies blocked</h1>" in without.text
    assert '"reason": "cookies_blocked"' in without.text
    assert stack.origin_status(stack.demo["sandbox_id"])["credential_seen"] is False


def test_the_embed_helper_is_served_at_its_versioned_path_for_any_page(stack: LocalStack) -> None:
    script = embed_script()
    reply = fetch(stack.api_url + script.path)

    assert reply.status == 200
    assert reply.body == EMBED_SCRIPT_FILE.read_bytes()
    assert reply.headers["Content-Type"].startswith("text/javascript")
    assert reply.headers["Access-Control-Allow-Origin"] == "*"  # loadable with SRI from any origin


def test_the_session_cookie_opens_the_sandbox_and_the_app_never_sees_a_credential(stack: LocalStack) -> None:
    sandbox_id = stack.demo["sandbox_id"]
    cookie = session_cookie(fetch(minted(stack)["url"]))

    page = fetch(f"{stack.preview_origin(sandbox_id)}/", headers={"Cookie": f"theme=dark; {cookie}"})
    script = fetch(f"{stack.preview_origin(sandbox_id)}/static/sandbox.js", headers={"Cookie": cookie})

    assert page.status == 200
    assert f"Sandbox {sandbox_id}" in page.text
    assert script.status == 200
    status = stack.origin_status(sandbox_id)
    assert status["credential_seen"] is False
    assert "theme" in status["cookie_names"]
    assert SESSION_COOKIE not in status["cookie_names"]


def test_a_read_session_cannot_use_the_input_channel(stack: LocalStack) -> None:
    sandbox_id = stack.demo["sandbox_id"]
    cookie = session_cookie(fetch(minted(stack, "read")["url"]))

    reply = fetch(
        f"{stack.preview_origin(sandbox_id)}/input/keys", "POST", {"Cookie": cookie}, b'{"key": "r"}'
    )

    assert reply.status == 403
    assert "View-only preview" in reply.text


def test_a_session_cookie_is_useless_on_another_sandbox_host(stack: LocalStack) -> None:
    cookie = session_cookie(fetch(minted(stack)["url"]))

    reply = fetch(f"{stack.preview_origin(stack.demo['sandbox_ids'][1])}/", headers={"Cookie": cookie})

    assert reply.status == 403
    assert "This preview link is for a different sandbox." in reply.text
