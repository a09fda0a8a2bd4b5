"""Issue 8's finding classes owned here, against the running stack over HTTP: a read token never
reaches the input channel through a lookalike of its path or a method-override header, and only
the canonical spelling of a token is a credential. The origin's log shows what reached it.
"""

from __future__ import annotations

import secrets
import time

import pytest

from tests.e2e.local_stack import LocalStack, Reply, fetch
from tests.e2e.test_http import minted, session_cookie
from tests.e2e.test_streams import origin_lines, wait_for_log_line

pytestmark = pytest.mark.e2e

LOOKALIKES = [
    "/input/keys",
    "/INPUT/keys",
    "/%69nput/keys",
    "/%2569nput/keys",
    "/%252569nput/keys",
    "/input;jsessionid=1/keys",
    "/static/..;/input/keys",
    "/input./keys",
    "/input%2e/keys",
    "/input%20/keys",
    "/input%00/keys",
    "/%EF%BD%89%EF%BD%8E%EF%BD%90%EF%BD%95%EF%BD%94/keys",
    "/static%5c..%5cinput%5ckeys",
    "/%C0%AFinput/keys",
]
OVERRIDE_HEADERS = ["X-HTTP-Method-Override", "X-Method-Override", "X-HTTP-Method"]
_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def session_for(stack: LocalStack, scope: str) -> str:
    exchange = fetch(minted(stack, scope)["url"])
    assert exchange.status == 302
    return session_cookie(exchange)


def get(
    stack: LocalStack, path: str, cookie: str, headers: dict[str, str] | None = None
) -> tuple[Reply, str]:
    marker = secrets.token_hex(6)
    url = f"{stack.preview_origin(stack.demo['sandbox_id'])}{path}?attempt-{marker}=1"
    return fetch(url, headers={"Cookie": cookie, **(headers or {})}), marker


def app_logged(stack: LocalStack, marker: str) -> bool:
    """Whether the app logged the request marked ``marker``, waiting up to 10 s for its line."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if any(marker in line for line in origin_lines(stack)):
            return True
        time.sleep(0.05)
    return False


def reached_origin(stack: LocalStack, marker: str) -> bool:
    """Whether the app saw the request marked ``marker``, which has been answered. The app logs a
    request after answering it, so its line may come after the front door's: a request sent now,
    which the app does answer, is awaited first."""
    wait_for_log_line(stack, marker)  # the front door's line: the request was answered
    later, later_marker = get(stack, "/", session_for(stack, "interact"))
    assert later.status == 200
    assert app_logged(stack, later_marker)
    return any(marker in line for line in origin_lines(stack))


@pytest.mark.parametrize("path", LOOKALIKES)
def test_a_read_token_never_reaches_the_input_channel_through_a_lookalike(
    stack: LocalStack, path: str
) -> None:
    reply, marker = get(stack, path, session_for(stack, "read"))

    assert reply.status == 403
    assert '"reason": "read_only"' in reply.text
    assert not reached_origin(stack, marker)


@pytest.mark.parametrize("path", ["/INPUT/keys", "/input;x/keys", "/input%00/keys"])
def test_an_interact_token_passes_the_same_paths(stack: LocalStack, path: str) -> None:
    reply, marker = get(stack, path, session_for(stack, "interact"))

    assert reply.status != 403
    assert app_logged(stack, marker)


@pytest.mark.parametrize("header", OVERRIDE_HEADERS)
def test_a_read_token_cannot_override_the_method(stack: LocalStack, header: str) -> None:
    cookie = session_for(stack, "read")

    refused, refused_marker = get(stack, "/", cookie, {header: "POST"})
    allowed, _ = get(stack, "/", cookie, {header: "GET"})

    assert refused.status == 403
    assert '"reason": "read_only"' in refused.text
    assert not reached_origin(stack, refused_marker)
    assert allowed.status == 200


def respelled(token: str) -> str:
    """The same signature bytes, the unused low bit of its last character set."""
    return token[:-1] + _B64URL[_B64URL.index(token[-1]) | 1]


def test_only_the_canonical_spelling_of_a_token_is_a_credential(stack: LocalStack) -> None:
    token = minted(stack, "interact")["token"]
    assert respelled(token) != token

    cookie_reply, marker = get(stack, "/", f"__Host-mp_session={respelled(token)}")
    exchange = fetch(f"{stack.preview_origin(stack.demo['sandbox_id'])}/?mt={respelled(token)}")
    opened = fetch(f"{stack.preview_origin(stack.demo['sandbox_id'])}/?mt={token}")
    cookies = "; ".join(value.split(";", 1)[0] for value in opened.headers.get_all("Set-Cookie", []))
    canonical, _ = get(stack, "/", cookies)

    assert cookie_reply.status == 403
    assert '"reason": "invalid_token"' in cookie_reply.text
    assert not reached_origin(stack, marker)
    assert exchange.status == 403
    assert "Set-Cookie" not in exchange.headers
    assert canonical.status == 200
