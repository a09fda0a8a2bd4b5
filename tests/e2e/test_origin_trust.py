"""The fleet ingress trusts only CloudFront, and the app never sees the data plane's credentials.

Against the running local stack: every app sits behind the real fleet ingress (``preview_ingress``),
which verifies ``X-Preview-Assertion`` with the keys the control plane publishes and admits only
requests carrying CloudFront's origin secret (``X-Preview-Ingress-Secret``), as a real fleet does.
``demo.json`` names each ingress's port (``ingress_ports``), never the secret.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page

from tests.e2e.local_stack import LocalStack, Reply, fetch

pytestmark = pytest.mark.e2e

APP_COOKIES = "theme=dark; app_session=s%3Aabc"


def set_cookies(reply: Reply) -> dict[str, str]:
    """name -> value of every cookie a response sets."""
    return dict(value.split(";", 1)[0].split("=", 1) for value in reply.headers.get_all("Set-Cookie", []))


def open_preview(stack: LocalStack, sandbox_id: str, scope: str = "read") -> tuple[dict[str, str], Reply]:
    """Mint, then open the preview URL: the exchange's cookies and its redirect."""
    minted = stack.mint(stack.demo["api_key"], sandbox_id, {"scope": scope})
    assert minted.status == 200, minted.text
    exchanged = fetch(minted.json()["url"])
    assert exchanged.status == 302
    return set_cookies(exchanged), exchanged


def page_after_cookie_check(base: str, location: str, cookie: str) -> str:
    """Where the exchange's redirect leads once the cookie check saw the session cookie."""
    assert location.startswith("/__preview/cookie-check"), location
    checked = fetch(f"{base}{location}", headers={"Cookie": cookie})
    assert checked.status == 302, checked.text
    page: str = checked.headers["Location"]
    return page


def cookie_header(cookies: dict[str, str]) -> str:
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


def direct(
    stack: LocalStack, sandbox_id: str, path: str, headers: dict[str, str], method: str = "GET"
) -> Reply:
    """A call straight to the sandbox's fleet ingress, bypassing CloudFront (the front door)."""
    port = stack.demo["ingress_ports"][sandbox_id]
    host = f"{sandbox_id}.{stack.demo['preview_domain']}:{stack.port}"
    return fetch(f"http://127.0.0.1:{port}{path}", method, {"Host": host, **headers})


# ------------------------------------------------------------ the ingress trusts only CloudFront
def test_a_viewers_own_origin_cookie_sent_straight_to_the_ingress_is_refused(stack: LocalStack) -> None:
    sandbox_id = stack.demo["sandbox_id"]
    cookies, _ = open_preview(stack, sandbox_id, "interact")
    assertion = cookies["__Host-mp_origin"]  # valid, for this very sandbox
    before = stack.origin_status(sandbox_id)["page_loads"]

    as_header = direct(stack, sandbox_id, "/", {"X-Preview-Assertion": assertion})
    as_cookie = direct(stack, sandbox_id, "/", {"Cookie": cookie_header(cookies)})
    guessed = direct(
        stack, sandbox_id, "/", {"X-Preview-Assertion": assertion, "X-Preview-Ingress-Secret": "x" * 43}
    )

    assert [as_header.status, as_cookie.status, guessed.status] == [403, 403, 403]
    assert "<!doctype html>" in as_header.text  # the styled denial page, not the app
    assert stack.origin_status(sandbox_id)["page_loads"] == before  # none reached the app


def test_a_read_assertion_sent_straight_to_the_ingress_cannot_post_input(stack: LocalStack) -> None:
    sandbox_id = stack.demo["sandbox_id"]
    cookies, _ = open_preview(stack, sandbox_id, "read")
    before = stack.origin_status(sandbox_id)["inputs"]

    straight = direct(
        stack, sandbox_id, "/input/keys", {"X-Preview-Assertion": cookies["__Host-mp_origin"]}, "POST"
    )
    through_the_edge = fetch(
        f"{stack.preview_origin(sandbox_id)}/input/keys",
        "POST",
        {"Cookie": cookie_header(cookies)},
        b'{"key":"r"}',
    )

    assert straight.status == 403
    assert through_the_edge.status == 403
    assert "View-only preview" in through_the_edge.text
    assert stack.origin_status(sandbox_id)["inputs"] == before


def test_a_tampered_or_foreign_assertion_is_refused_at_the_ingress_behind_a_valid_session(
    stack: LocalStack,
) -> None:
    demo, other = stack.demo["sandbox_ids"][:2]
    cookies, _ = open_preview(stack, demo, "interact")
    header, payload, signature = cookies["__Host-mp_origin"].split(".")
    tampered = f"{header}.{payload}.{signature[:10]}{'A' if signature[10] != 'A' else 'B'}{signature[11:]}"
    foreign = open_preview(stack, other, "interact")[0]["__Host-mp_origin"]

    without = {name: value for name, value in cookies.items() if name != "__Host-mp_origin"}
    jars = [cookies | {"__Host-mp_origin": tampered}, cookies | {"__Host-mp_origin": foreign}, without]

    replies = [
        fetch(f"{stack.preview_origin(demo)}/api/status", headers={"Cookie": cookie_header(jar)})
        for jar in jars
    ]

    assert [reply.status for reply in replies] == [403, 403, 403]


def test_a_session_paired_with_another_tokens_assertion_is_refused_at_the_ingress(stack: LocalStack) -> None:
    """Two live previews of one sandbox: the read one's session with the interact one's assertion
    passes the edge (the session is valid; the edge passes the assertion on unread with the
    session's token id) and the ingress refuses it, for HTTP and for a WebSocket."""
    sandbox_id = stack.demo["sandbox_id"]
    read, _ = open_preview(stack, sandbox_id, "read")
    interact, _ = open_preview(stack, sandbox_id, "interact")
    jar = cookie_header(read | {"__Host-mp_origin": interact["__Host-mp_origin"]})
    before = stack.origin_status(sandbox_id)
    upgrade = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }

    page = fetch(f"{stack.preview_origin(sandbox_id)}/api/status", headers={"Cookie": jar})
    stream = fetch(f"{stack.preview_origin(sandbox_id)}/api/request", headers={"Cookie": jar, **upgrade})

    assert [page.status, stream.status] == [403, 403]
    assert "Preview link invalid" in page.text
    assert stack.origin_status(sandbox_id)["page_loads"] == before["page_loads"]


def test_every_request_the_data_plane_forwards_is_accepted(stack: LocalStack) -> None:
    sandbox_id = stack.demo["sandbox_id"]
    base = stack.preview_origin(sandbox_id)
    cookies, redirect = open_preview(stack, sandbox_id, "interact")
    session = f"{APP_COOKIES}; {cookie_header(cookies)}"

    replies = {
        "redirect follow-up": fetch(
            f"{base}{page_after_cookie_check(base, redirect.headers['Location'], session)}",
            headers={"Cookie": session},
        ),
        "stylesheet": fetch(f"{base}/static/sandbox.css", headers={"Cookie": session}),
        "xhr": fetch(f"{base}/api/status", headers={"Cookie": session}),
        "input": fetch(f"{base}/input/keys", "POST", {"Cookie": session}, b'{"key": "k"}'),
    }

    assert {name: reply.status for name, reply in replies.items()} == dict.fromkeys(replies, 200)


# ----------------------------------------------------------- our cookies never reach the origin
def arrived(reply: Reply) -> dict[str, Any]:
    assert reply.status == 200, reply.text
    document: dict[str, Any] = reply.json()
    return document


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "OPTIONS"])
def test_our_cookies_never_reach_the_origin_whatever_the_method(stack: LocalStack, method: str) -> None:
    sandbox_id = stack.demo["sandbox_id"]
    cookies, _ = open_preview(stack, sandbox_id, "interact")
    header = f"theme=dark; {cookie_header(cookies)}; __Host-mp_future=1; last=2"

    reply = fetch(f"{stack.preview_origin(sandbox_id)}/api/request", method, {"Cookie": header}, b"{}")

    seen = arrived(reply)
    assert seen["method"] == method
    assert seen["cookie_names"] == ["theme", "last"]


def test_our_cookies_never_reach_the_origin_on_an_upgrade_request(stack: LocalStack) -> None:
    sandbox_id = stack.demo["sandbox_id"]
    cookies, _ = open_preview(stack, sandbox_id, "interact")
    upgrade = {
        "Cookie": f"theme=dark; {cookie_header(cookies)}",
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }

    seen = arrived(fetch(f"{stack.preview_origin(sandbox_id)}/api/request", headers=upgrade))

    assert seen["cookie_names"] == ["theme"]


def test_the_exchange_redirect_follow_up_brings_only_the_apps_cookies(stack: LocalStack) -> None:
    sandbox_id = stack.demo["sandbox_id"]
    minted = stack.mint(stack.demo["api_key"], sandbox_id, {"scope": "read"}).json()
    exchanged = fetch(
        minted["url"].replace("?mt=", "/api/request?lang=en&mt="), headers={"Cookie": APP_COOKIES}
    )
    assert exchanged.status == 302
    jar = f"{APP_COOKIES}; {cookie_header(set_cookies(exchanged))}"

    base = stack.preview_origin(sandbox_id)
    page = page_after_cookie_check(base, exchanged.headers["Location"], jar)

    seen = arrived(fetch(f"{base}{page}", headers={"Cookie": jar}))

    assert seen["cookie_names"] == ["theme", "app_session"]
    assert "lang" in seen["query_names"]  # (the mt parameter itself is the edge's: issue 8)
    assert "x-preview-assertion" not in seen["header_names"]  # the ingress's credential, never the app's
    assert "x-preview-ingress-secret" not in seen["header_names"]


def test_with_only_our_cookies_the_origin_gets_none_of_them(stack: LocalStack) -> None:
    sandbox_id = stack.demo["sandbox_id"]
    cookies, _ = open_preview(stack, sandbox_id)

    seen = arrived(
        fetch(f"{stack.preview_origin(sandbox_id)}/api/request", headers={"Cookie": cookie_header(cookies)})
    )

    assert not [name for name in seen["cookie_names"] if name.lower().startswith("__host-mp_")]


def test_in_chromium_the_origin_never_sees_our_cookies(stack: LocalStack, page: Page) -> None:
    sandbox_id = stack.demo["sandbox_ids"][1]
    minted = stack.mint(stack.demo["api_key"], sandbox_id, {"scope": "interact"}).json()
    page.goto(minted["url"])
    page.wait_for_selector("text=Sandbox")
    browser_cookies = {cookie["name"] for cookie in page.context.cookies()}
    assert {"__Host-mp_session", "__Host-mp_origin"} <= browser_cookies  # the browser holds them

    seen = page.evaluate(
        """async () => {
            const get = await (await fetch('/api/request')).json();
            const post = await (await fetch('/api/request', {method: 'POST', body: '{}'})).json();
            return {get, post};
        }"""
    )

    for request in (seen["get"], seen["post"]):
        assert "sandbox_theme" in request["cookie_names"]  # the app's own cookie still arrives
        assert not [name for name in request["cookie_names"] if name.lower().startswith("__host-mp_")]
    assert stack.origin_status(sandbox_id)["credential_seen"] is False
