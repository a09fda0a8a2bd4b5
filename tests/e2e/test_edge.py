"""The token never reaches the app: the running stack over HTTP, every method, every spelling.

``PreviewEdge`` sends every request whose query carries ``mt`` (any spelling API Gateway decodes to
it) to the REST API, never to the fleet ingress: a GET is the exchange, any other method meets no
route there. The demo app records whether any request carried a credential (an ``mt`` parameter,
the session cookie, a token anywhere, the assertion or the ingress secret); each test uses the
second demo sandbox and checks that record after its requests.
"""

from __future__ import annotations

import json
import socket

import pytest
from preview_tokens.data_plane.access import SESSION_COOKIE

from tests.e2e.local_stack import LocalStack, fetch

pytestmark = pytest.mark.e2e


def sandbox(stack: LocalStack) -> str:
    sandbox_id: str = stack.demo["sandbox_ids"][1]
    return sandbox_id


def mint(stack: LocalStack, scope: str = "interact") -> str:
    reply = stack.mint(stack.demo["api_key"], sandbox(stack), {"scope": scope})
    assert reply.status == 200, reply.text
    token: str = reply.json()["token"]
    return token


def assert_origin_never_saw_a_credential(stack: LocalStack) -> None:
    status = stack.origin_status(sandbox(stack))
    assert status["credential_seen"] is False
    assert SESSION_COOKIE not in status["cookie_names"]


@pytest.mark.parametrize("name", ["mt", "m%74", "%6D%74", "%6d%74"])
def test_a_get_with_the_token_in_any_spelling_is_exchanged_and_the_page_loads_without_it(
    stack: LocalStack, name: str
) -> None:
    origin = stack.preview_origin(sandbox(stack))

    exchanged = fetch(f"{origin}/?lang=en&{name}={mint(stack)}")

    assert exchanged.status == 302
    assert exchanged.headers["Location"] == "/__preview/cookie-check?lang=en"
    cookie = exchanged.headers["Set-Cookie"].split(";", 1)[0]
    assert cookie.startswith(f"{SESSION_COOKIE}=mp_")
    checked = fetch(f"{origin}/__preview/cookie-check?lang=en", headers={"Cookie": cookie})
    assert checked.status == 302
    assert checked.headers["Location"] == "/?lang=en"
    cookies = "; ".join(value.split(";", 1)[0] for value in exchanged.headers.get_all("Set-Cookie", []))
    page = fetch(f"{origin}/?lang=en", headers={"Cookie": f"theme=dark; {cookies}"})
    assert page.status == 200
    assert_origin_never_saw_a_credential(stack)


@pytest.mark.parametrize("name", ["mt", "m%74", "%6D%74", "%6d%74"])
def test_a_post_with_the_token_in_its_query_never_reaches_the_app(stack: LocalStack, name: str) -> None:
    """An app's own request carrying ``?mt=`` goes to the REST API, where only GET is a route."""
    before = stack.origin_status(sandbox(stack))["inputs"]

    reply = fetch(
        f"{stack.preview_origin(sandbox(stack))}/input/keys?{name}={mint(stack)}&v=1",
        "POST",
        {"Content-Type": "application/json"},
        json.dumps({"key": name[-1]}).encode(),
    )

    assert reply.status == 403, reply.text
    assert "Set-Cookie" not in reply.headers
    assert stack.origin_status(sandbox(stack))["inputs"] == before
    assert_origin_never_saw_a_credential(stack)


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"])
def test_every_other_method_with_the_token_in_its_query_never_reaches_the_app(
    stack: LocalStack, method: str
) -> None:
    reply = fetch(f"{stack.preview_origin(sandbox(stack))}/?mt={mint(stack)}", method)

    assert reply.status == 403
    assert "Set-Cookie" not in reply.headers
    assert_origin_never_saw_a_credential(stack)


def test_a_token_sent_by_the_client_in_the_edges_header_never_reaches_the_origin(stack: LocalStack) -> None:
    origin = stack.preview_origin(sandbox(stack))
    opened = fetch(f"{origin}/?mt={mint(stack)}")
    cookie = "; ".join(value.split(";", 1)[0] for value in opened.headers.get_all("Set-Cookie", []))

    with_cookie = fetch(f"{origin}/", headers={"Cookie": cookie, "X-Preview-Token": "mp_forged"})
    header_only = fetch(f"{origin}/", headers={"X-Preview-Token": mint(stack)})

    assert with_cookie.status == 200
    assert header_only.status == 403  # the edge drops it: only ?mt= becomes the fallback token
    assert '"reason": "no_token"' in header_only.text
    assert_origin_never_saw_a_credential(stack)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_several_mt_values_are_an_invalid_link_not_one_of_them(stack: LocalStack, method: str) -> None:
    token = mint(stack)

    reply = fetch(f"{stack.preview_origin(sandbox(stack))}/?mt={token}&m%74={token}", method)

    assert reply.status == 403
    assert "Set-Cookie" not in reply.headers
    if method == "GET":  # the exchange's page; a POST meets no route of the REST API
        assert "Preview link invalid" in reply.text


def raw_request(stack: LocalStack, head: str, body: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", stack.port), timeout=20) as connection:
        connection.sendall(head.encode() + body)
        connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def test_a_chunked_input_body_reaches_the_sandbox(stack: LocalStack) -> None:
    host = f"{sandbox(stack)}.{stack.demo['preview_domain']}:{stack.port}"
    body = json.dumps({"key": "c"}).encode()
    cookies = stack.preview_session(sandbox(stack), "interact")
    head = (
        f"POST /input/keys HTTP/1.1\r\nHost: {host}\r\nCookie: {cookies}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )

    answer = raw_request(stack, head, f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")

    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    assert stack.origin_status(sandbox(stack))["inputs"][-1] == "c"


def test_a_malformed_content_length_is_a_400_not_a_dropped_connection(stack: LocalStack) -> None:
    host = f"{sandbox(stack)}.{stack.demo['preview_domain']}:{stack.port}"

    answer = raw_request(
        stack, f"POST /input/keys HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1x\r\n\r\n", b"{}"
    )

    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
