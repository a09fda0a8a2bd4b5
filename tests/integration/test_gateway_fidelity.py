"""The local gateway behaves like API Gateway where AWS's behaviour is recorded.

Each behaviour below is listed with its source in ``local/preview_local/README.md``. What the
preview API still serves is the exchange, the cookie check and the denial page (Lambda proxy
integrations): allowed traffic goes from the edge to the fleet ingress, never through API Gateway,
so the recorded ``HTTP_PROXY`` mapping behaviour and the ``mt`` leak through it retired with the
REST sandbox routes (issue 13).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from preview_local.deployment import deploy_locally
from preview_local.edge import PreviewEdge
from preview_local.gateway import HEADER_LIMIT_BYTES, RestApiGateway, request_size
from preview_local.http_messages import HttpRequest, HttpResponse
from preview_local.http_server import MAX_BODY_BYTES, PAYLOAD_TOO_LARGE, LoopbackServer
from preview_local.rest_api import RestApi
from preview_tokens.data_plane.access import SESSION_COOKIE
from preview_tokens.data_plane.exchange import EXCHANGE_PATH

from tests.support.template import placeholder_physical_ids

HOST = "sbx-demo.sandboxes.localhost:3999"
TOKEN = "mp_eyJ0b2tlbiI6InNlY3JldCJ9.c2lnbmF0dXJl"
PHYSICAL_IDS = placeholder_physical_ids()


@dataclass
class FakeFunction:
    answer: Any
    events: list[dict[str, Any]] = field(default_factory=list)

    def invoke(self, event: dict[str, Any]) -> Any:
        self.events.append(event)
        return self.answer


@pytest.fixture(scope="module")
def data_plane() -> RestApi:
    deployment = deploy_locally(
        {"PreviewDomain": "sandboxes.localhost", "SandboxOriginUrl": "https://fleet.example.com"},
        PHYSICAL_IDS,
    )
    return RestApi.from_deployment(deployment.rest_apis["PreviewApi"])


def exchange_function() -> FakeFunction:
    return FakeFunction({"statusCode": 302, "headers": {"Location": "/"}, "body": ""})


# The exchange route's authorizer (identity source X-Preview-Token): an Allow for any method ARN.
ALLOW = {
    "principalId": "p",
    "policyDocument": {"Statement": [{"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*"}]},
}
TOKEN_HEADER = ("X-Preview-Token", "mp_x")


def viewer(
    method: str, path: str, query: str = "", *headers: tuple[str, str], body: bytes = b""
) -> HttpRequest:
    return HttpRequest(method, path, query, (("Host", HOST), *headers), body)


# ------------------------------------------------------------------ headers API Gateway drops


def test_hop_by_hop_headers_and_upgrade_never_reach_the_function(data_plane: RestApi) -> None:
    exchange = exchange_function()
    dropped = {
        "Connection": "keep-alive, X-Hop",
        "X-Hop": "named by Connection",
        "Keep-Alive": "timeout=5",
        "Upgrade": "websocket",
        "TE": "trailers",
        "Trailer": "X-Checksum",
        "Expect": "100-continue",
        "Max-Forwards": "3",
        "Proxy-Connection": "keep-alive",
        "Proxy-Authenticate": "Basic",
        "Proxy-Authorization": "Basic cHJveHk6c2VjcmV0",
    }
    sent = viewer("GET", EXCHANGE_PATH, "", *dropped.items(), ("X-App", "kept"), TOKEN_HEADER)

    functions = {"ExchangeFunction": exchange, "PreviewAuthorizerFunction": FakeFunction(ALLOW)}
    RestApiGateway(data_plane, functions, 3999).handle(sent)

    event_headers = {name.lower() for name in exchange.events[-1]["headers"]}
    assert not event_headers & {name.lower() for name in dropped}
    assert "x-app" in event_headers


# --------------------------------------------------------------------------------- limits


def test_request_line_and_header_values_are_limited_to_10240_bytes(data_plane: RestApi) -> None:
    exchange = exchange_function()
    functions = {"ExchangeFunction": exchange, "PreviewAuthorizerFunction": FakeFunction(ALLOW)}
    gateway = RestApiGateway(data_plane, functions, 3999)
    at_limit = viewer("GET", EXCHANGE_PATH, "", TOKEN_HEADER, ("X-Big", ""))
    filler = "x" * (HEADER_LIMIT_BYTES - request_size(at_limit))
    at_limit = viewer("GET", EXCHANGE_PATH, "", TOKEN_HEADER, ("X-Big", filler))
    over = viewer("GET", EXCHANGE_PATH, "", TOKEN_HEADER, ("X-Big", filler + "x"))
    assert request_size(at_limit) == HEADER_LIMIT_BYTES

    assert gateway.handle(at_limit).status == 302
    calls = len(exchange.events)
    refused = gateway.handle(over)
    assert refused.status == 431
    assert len(exchange.events) == calls  # refused before the function


# ---------------------------------------------------------------------- bodies over the wire


@pytest.fixture(scope="module")
def echo_server() -> Iterator[LoopbackServer]:
    def echo(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, (("Content-Type", "application/octet-stream"),), request.body)

    server = LoopbackServer(0, "echo").start(echo)
    yield server
    server.stop()


def exchange_raw(server: LoopbackServer, head: bytes, body: bytes = b"", send_body: bool = True) -> bytes:
    """Send a raw request; everything the server answers until it closes the connection."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as connection:
        connection.sendall(head + (body if send_body else b""))
        connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:80]
    return int(answer[9:12])


def body_of(answer: bytes) -> bytes:
    return answer.split(b"\r\n\r\n", 1)[1]


def test_a_chunked_request_body_is_accepted(echo_server: LoopbackServer) -> None:
    head = b"POST /input HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    chunks = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"

    answer = exchange_raw(echo_server, head, chunks)

    assert status_of(answer) == 200
    assert body_of(answer) == b"hello world"


@pytest.mark.parametrize(
    ("framing", "status"),
    [
        (b"Content-Length: abc\r\n", 400),
        (b"Content-Length: -1\r\n", 400),
        (b"Content-Length: +5\r\n", 400),
        (b"Content-Length: 5, 6\r\n", 400),
        (b"Content-Length: 5\r\nContent-Length: 6\r\n", 400),
        (b"Content-Length: 0x5\r\n", 400),
        (b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", 400),
        (b"Transfer-Encoding: gzip, chunked\r\n", 501),
    ],
    ids=["letters", "negative", "plus", "list", "twice", "hex", "both", "gzip"],
)
def test_a_body_framing_that_cannot_be_trusted_gets_an_answer_not_a_dropped_connection(
    echo_server: LoopbackServer, framing: bytes, status: int
) -> None:
    answer = exchange_raw(echo_server, b"POST /input HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n", b"hello")

    assert status_of(answer) == status
    assert b"Connection: close" in answer


@pytest.mark.parametrize(
    "chunk", [b"zz\r\nhello\r\n0\r\n\r\n", b"5\r\nhelloXX0\r\n\r\n", b"5\nhello\r\n0\r\n\r\n"]
)
def test_a_malformed_chunk_is_a_400(echo_server: LoopbackServer, chunk: bytes) -> None:
    head = b"POST /input HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert status_of(exchange_raw(echo_server, head, chunk)) == 400


def test_identical_content_lengths_are_one_length(echo_server: LoopbackServer) -> None:
    head = b"POST /input HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\nConnection: close\r\n\r\n"
    answer = exchange_raw(echo_server, head, b"hello")
    assert (status_of(answer), body_of(answer)) == (200, b"hello")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_payload_over_10_mb_gets_api_gateways_413(echo_server: LoopbackServer, chunked: bool) -> None:
    body = b"x" * (MAX_BODY_BYTES + 1)
    if chunked:
        head = b"POST /input HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        payload = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    else:
        head = f"POST /input HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        payload = body

    answer = exchange_raw(echo_server, head, payload)

    assert status_of(answer) == 413
    assert body_of(answer) == PAYLOAD_TOO_LARGE.encode()


def test_a_payload_of_exactly_10_mb_passes(echo_server: LoopbackServer) -> None:
    body = b"y" * MAX_BODY_BYTES
    head = f"POST /input HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    answer = exchange_raw(echo_server, head.encode(), body)
    assert status_of(answer) == 200
    assert len(body_of(answer)) == MAX_BODY_BYTES


# --------------------------------------------------------------------------------- the mt leak


# --------------------------------------------------------------------------------- the mt leak
# Through PreviewEdge (its Python mirror; the function: tests/integration/test_preview_edge_function.py):
# a request with any spelling of mt is routed to the exchange, never to the ingress, and the viewer's
# own X-Preview-Token never passes. (The previous REST mappings that leaked it are retired.)

VARIANTS = {
    "GET ?mt=": ("GET", "/app.js", f"mt={TOKEN}&v=1", ()),
    "GET ?m%74=": ("GET", "/app.js", f"m%74={TOKEN}", ()),
    "HEAD ?mt=": ("HEAD", "/", f"mt={TOKEN}", ()),
    "POST ?mt=": ("POST", "/input/keys", f"mt={TOKEN}", ()),
    "POST ?%6D%74=": ("POST", "/input/keys", f"%6D%74={TOKEN}&v=1", ()),
    "PUT ?%6d%74=": ("PUT", "/state", f"%6d%74={TOKEN}", ()),
    "DELETE ?mt=&mt=": ("DELETE", "/state", f"mt={TOKEN}&mt={TOKEN}", ()),
    "PATCH X-Preview-Token": ("PATCH", "/state", "v=1", (("X-Preview-Token", TOKEN),)),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_the_ingress_never_receives_the_token_through_the_edge(name: str) -> None:
    method, path, query, client_headers = VARIANTS[name]
    sent = viewer(method, path, query, ("Cookie", f"theme=dark; {SESSION_COOKIE}={TOKEN}"), *client_headers)

    decision = PreviewEdge(lambda key: None, "/input").decide(sent)

    assert decision.route != "ingress"
    if decision.route == "exchange":
        assert TOKEN not in decision.request.query, "mt leaves the query for X-Preview-Token"
    else:
        assert all(TOKEN not in value for name, value in decision.request.headers if name.lower() != "cookie")
