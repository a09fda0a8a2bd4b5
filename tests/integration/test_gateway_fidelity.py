"""The local gateway behaves like API Gateway where AWS's behaviour is recorded, and the mt leak.

Each behaviour below is listed with its source in ``local/preview_local/README.md``. The last
section runs viewer requests through the edge and the preview API as template.yaml configures
them, over real HTTP to a recording origin, and shows that the token reaches the origin with
the previous configuration (``querystring.mt: ''`` and an edge that left the query alone) and
never with the current one.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerResponse,
)
from preview_local.deployment import deploy_locally
from preview_local.edge import viewer_request
from preview_local.gateway import HEADER_LIMIT_BYTES, RestApiGateway, request_size
from preview_local.http_messages import HttpRequest, HttpResponse
from preview_local.http_server import MAX_BODY_BYTES, PAYLOAD_TOO_LARGE, LoopbackServer
from preview_local.rest_api import Integration, Method, Resource, RestApi
from preview_tokens.data_plane.access import SESSION_COOKIE
from preview_tokens.data_plane.exchange import EXCHANGE_PATH

from tests.support.template import placeholder_physical_ids, sam_template

HOST = "sbx-demo.sandboxes.localhost:3999"
TOKEN = "mp_eyJ0b2tlbiI6InNlY3JldCJ9.c2lnbmF0dXJl"
PHYSICAL_IDS = placeholder_physical_ids()


# ----------------------------------------------------------------------------- fixtures


@dataclass
class RecordingOrigin:
    """The sandbox fleet's ingress: records what it receives, answers 200 (or waits, to hang)."""

    requests: list[HttpRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)
    hang_path: str = "/hang"

    def respond(self, request: HttpRequest) -> HttpResponse:
        with self.lock:
            self.requests.append(request)
        if request.path == self.hang_path:
            self.release.wait(10)
        return HttpResponse.text(200, "origin")

    def last(self) -> HttpRequest:
        with self.lock:
            return self.requests[-1]


@dataclass
class FakeFunction:
    answer: Any
    events: list[dict[str, Any]] = field(default_factory=list)

    def invoke(self, event: dict[str, Any]) -> Any:
        self.events.append(event)
        return self.answer


@pytest.fixture(scope="module")
def origin() -> Iterator[tuple[RecordingOrigin, LoopbackServer]]:
    recorder = RecordingOrigin()
    server = LoopbackServer(0, "test-origin").start(recorder.respond)
    yield recorder, server
    recorder.release.set()
    server.stop()


def preview_api(origin_url: str, template: dict[str, Any] | None = None) -> RestApi:
    deployment = deploy_locally(
        {"PreviewDomain": "sandboxes.localhost", "SandboxOriginUrl": origin_url},
        PHYSICAL_IDS,
        template,
    )
    return RestApi.from_deployment(deployment.rest_apis["PreviewApi"])


@pytest.fixture(scope="module")
def data_plane(origin: tuple[RecordingOrigin, LoopbackServer]) -> RestApi:
    return preview_api(origin[1].url)


def allow_all(api: RestApi, origin_cookie: str = "theme=dark", **context: str) -> FakeFunction:
    """An authorizer that allows every request of every method, with this context."""
    response = APIGatewayAuthorizerResponse.from_route_arn(
        f"arn:aws:execute-api:us-east-1:123456789012:{api.api_id}/{api.stage}/GET/",
        principal_id="sbx-demo",
        context={"sandbox_id": "sbx-demo", "scope": "interact", "origin_cookie": origin_cookie, **context},
    )
    response.allow_all_routes()
    return FakeFunction(response.asdict())


EXCHANGE = FakeFunction({"statusCode": 302, "headers": {"Location": "/"}, "body": ""})


def gateway(api: RestApi, authorizer: FakeFunction, timeout: float | None = None) -> RestApiGateway:
    functions = {"PreviewAuthorizerFunction": authorizer, "ExchangeFunction": EXCHANGE}
    return RestApiGateway(api, functions, 3999, integration_timeout_seconds=timeout)


def viewer(
    method: str, path: str, query: str = "", *headers: tuple[str, str], body: bytes = b""
) -> HttpRequest:
    return HttpRequest(method, path, query, (("Host", HOST), *headers), body)


# ------------------------------------------------ request parameters (recorded against AWS)


def test_the_recorded_http_proxy_mapping_behaviour_is_reproduced(
    origin: tuple[RecordingOrigin, LoopbackServer],
) -> None:
    """LocalStack's AWS-recorded ``test_http_proxy_integration_request_data_mappings``, replayed."""
    recorder, server = origin
    integration = Integration(
        "http_proxy",
        server.url + "/{pathVar}?testVar={pathVar}&testQs={qsVar}",
        {
            "integration.request.header.headerVar": "method.request.header.foobar",
            "integration.request.path.qsVar": "method.request.querystring.testVar",
            "integration.request.path.pathVar": "method.request.path.pathVariable",
            "integration.request.querystring.queryString": "method.request.querystring.testQueryString",
            "integration.request.querystring.testQs": "method.request.querystring.testQueryString",
            "integration.request.querystring.testEmptyQs": "method.request.header.emptyheader",
        },
    )
    api = RestApi(
        "abc123", "test", (Resource("/{pathVariable}", {"ANY": Method("ANY", integration, None)}),), {}, ()
    )
    sent = viewer(
        "POST",
        "/foobar",
        "testQueryString=foo&testVar=bar",
        ("foobar", "mapped-value"),
        ("headerVar", "request-value"),
        body=b'{"message": "hello world"}',
    )

    assert RestApiGateway(api, {}, 3999).handle(sent).status == 200

    received = recorder.last()
    query: dict[str, list[str]] = {}
    for name, value in received.query_items():
        query.setdefault(name, []).append(value)
    # AWS's echo server joined repeated parameters with ",": testVar "foobar,bar", testQs "bar,foo"
    assert query == {
        "testVar": ["foobar", "bar"],
        "testQs": ["bar", "foo"],
        "testQueryString": ["foo"],
        "queryString": ["foo"],
    }
    assert received.header("headerVar") == "mapped-value"  # a mapped header replaces the client's
    assert [name.lower() for name, _ in received.headers].count("headervar") == 1
    assert received.body == b'{"message": "hello world"}'


def test_a_mapped_query_parameter_is_added_beside_the_clients_never_replacing_it(
    origin: tuple[RecordingOrigin, LoopbackServer],
) -> None:
    recorder, server = origin
    integration = Integration("http_proxy", server.url + "/", {"integration.request.querystring.mt": "'-'"})
    api = RestApi("abc123", "test", (Resource("/", {"ANY": Method("ANY", integration, None)}),), {}, ())

    RestApiGateway(api, {}, 3999).handle(viewer("GET", "/", "mt=" + TOKEN))

    assert recorder.last().query_items() == [("mt", TOKEN), ("mt", "-")]


@pytest.mark.parametrize("origin_cookie", ["", None], ids=["empty", "missing"])
def test_a_mapping_whose_value_is_empty_or_missing_lets_the_clients_header_through(
    data_plane: RestApi, origin: tuple[RecordingOrigin, LoopbackServer], origin_cookie: str | None
) -> None:
    recorder, _ = origin
    authorizer = allow_all(data_plane)
    if origin_cookie is None:
        del authorizer.answer["context"]["origin_cookie"]
    else:
        authorizer.answer["context"]["origin_cookie"] = origin_cookie
    client_cookie = f"theme=dark; {SESSION_COOKIE}={TOKEN}"

    gateway(data_plane, authorizer).handle(viewer("GET", "/app.js", "", ("Cookie", client_cookie)))

    # why the authorizer never answers an empty value (it denies instead): the client's Cookie passes
    assert recorder.last().header("Cookie") == client_cookie


def test_every_mapped_header_replaces_every_client_header_of_that_name(
    data_plane: RestApi, origin: tuple[RecordingOrigin, LoopbackServer]
) -> None:
    recorder, _ = origin
    sent = viewer(
        "GET",
        "/app.js",
        "",
        ("X-Sandbox-Id", "sbx-forged"),
        ("x-sandbox-id", "sbx-forged-2"),
        ("X-Preview-Scope", "interact"),
        ("X-Preview-Token", TOKEN),
        ("Cookie", f"{SESSION_COOKIE}={TOKEN}"),
    )

    gateway(data_plane, allow_all(data_plane)).handle(sent)

    received = recorder.last()
    assert [value for name, value in received.headers if name.lower() == "x-sandbox-id"] == ["sbx-demo"]
    assert received.header("X-Preview-Token") == "none"
    assert received.header("Cookie") == "theme=dark"


# ------------------------------------------------------------------ headers API Gateway drops


def test_hop_by_hop_headers_and_upgrade_reach_neither_the_authorizer_nor_the_origin(
    data_plane: RestApi, origin: tuple[RecordingOrigin, LoopbackServer]
) -> None:
    recorder, _ = origin
    authorizer = allow_all(data_plane)
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
        "Via": "1.1 proxy",
    }
    sent = viewer("GET", "/app.js", "", *dropped.items(), ("X-App", "kept"))

    gateway(data_plane, authorizer).handle(sent)

    received = {name.lower() for name, _ in recorder.last().headers}
    assert not received & {name.lower() for name in dropped}
    assert "x-app" in received
    event_headers = {name.lower() for name in authorizer.events[-1]["headers"]}
    assert not event_headers & {name.lower() for name in dropped if name != "Via"}
    assert "x-app" in event_headers


# --------------------------------------------------------------------------------- limits


def test_request_line_and_header_values_are_limited_to_10240_bytes(data_plane: RestApi) -> None:
    authorizer = allow_all(data_plane)
    at_limit = viewer("GET", "/", "", ("X-Big", ""))
    filler = "x" * (HEADER_LIMIT_BYTES - request_size(at_limit))
    at_limit = viewer("GET", "/", "", ("X-Big", filler))
    over = viewer("GET", "/", "", ("X-Big", filler + "x"))
    assert request_size(at_limit) == HEADER_LIMIT_BYTES

    assert gateway(data_plane, authorizer).handle(at_limit).status == 200
    calls = len(authorizer.events)
    refused = gateway(data_plane, authorizer).handle(over)
    assert refused.status == 431
    assert len(authorizer.events) == calls  # refused before the authorizer


def test_an_integration_that_does_not_answer_in_time_is_an_integration_timeout(
    data_plane: RestApi, origin: tuple[RecordingOrigin, LoopbackServer]
) -> None:
    assert {m.integration.timeout_seconds for r in data_plane.resources for m in r.methods.values()} == {29.0}

    response = gateway(data_plane, allow_all(data_plane), timeout=0.3).handle(viewer("GET", "/hang"))

    # INTEGRATION_TIMEOUT: the template's Gateway Response, the styled "Sandbox not responding" page
    assert response.status == 504
    assert b"Sandbox not responding" in response.body
    assert b"origin_unreachable" in response.body


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


@dataclass(frozen=True)
class Variant:
    method: str
    path: str
    query: str
    client_headers: tuple[tuple[str, str], ...] = ()
    leaked_before: bool = True
    """Whether the previous configuration let the token reach the origin."""


VARIANTS = {
    "GET ?mt=": Variant("GET", "/app.js", f"mt={TOKEN}&v=1", leaked_before=False),
    "GET ?m%74=": Variant("GET", "/app.js", f"m%74={TOKEN}", leaked_before=False),
    "HEAD ?mt=": Variant("HEAD", "/", f"mt={TOKEN}"),
    "POST ?mt=": Variant("POST", "/input/keys", f"mt={TOKEN}"),
    "POST ?%6D%74=": Variant("POST", "/input/keys", f"%6D%74={TOKEN}&v=1"),
    "PUT ?%6d%74=": Variant("PUT", "/state", f"%6d%74={TOKEN}"),
    "DELETE ?mt=&mt=": Variant("DELETE", "/state", f"mt={TOKEN}&mt={TOKEN}"),
    "PATCH X-Preview-Token": Variant("PATCH", "/state", "v=1", (("X-Preview-Token", TOKEN),)),
}


def old_viewer_request(request: HttpRequest) -> HttpRequest:
    """PreviewEdgeRouter before: GET ?mt= to the exchange, the query and headers left alone."""
    names = [name for name, _ in request.query_items()]
    if request.method != "GET" or "mt" not in names or request.path.startswith("/__preview/"):
        return request
    return HttpRequest(request.method, EXCHANGE_PATH + request.path, request.query, request.headers)


def old_template(blank: str) -> dict[str, Any]:
    """template.yaml with the previous mapping: mt blanked by a static value, no X-Preview-Token."""
    template = sam_template()
    paths = template["Resources"]["PreviewApi"]["Properties"]["DefinitionBody"]["paths"]
    for route in ("/", "/{proxy+}"):
        mappings = paths[route]["x-amazon-apigateway-any-method"]["x-amazon-apigateway-integration"][
            "requestParameters"
        ]
        del mappings["integration.request.header.X-Preview-Token"]
        mappings["integration.request.querystring.mt"] = blank
    return template


def origin_received_token(
    recorder: RecordingOrigin, edge: Callable[[HttpRequest], HttpRequest], api: RestApi, variant: Variant
) -> tuple[bool, bool]:
    """Send the variant with a session cookie through the edge and the gateway.

    Whether the origin got the request at all, and whether the token got there with it.
    """
    before = len(recorder.requests)
    sent = viewer(
        variant.method,
        variant.path,
        variant.query,
        ("Cookie", f"theme=dark; {SESSION_COOKIE}={TOKEN}"),
        *variant.client_headers,
        body=b"{}" if variant.method not in ("GET", "HEAD") else b"",
    )
    gateway(api, allow_all(api)).handle(edge(sent))
    with recorder.lock:
        received = recorder.requests[before:]
    leaked = any(
        TOKEN in request.query or any(TOKEN in value for _, value in request.headers) for request in received
    )
    return bool(received), leaked


@pytest.mark.parametrize("name", list(VARIANTS))
def test_the_origin_never_receives_the_token_through_the_edge_and_the_preview_api(
    data_plane: RestApi, origin: tuple[RecordingOrigin, LoopbackServer], name: str
) -> None:
    variant = VARIANTS[name]
    reached, leaked = origin_received_token(origin[0], viewer_request, data_plane, variant)
    assert reached is (variant.method != "GET")  # a GET with a token is exchanged instead
    assert leaked is False


@pytest.mark.parametrize("blank", ["''", "'-'"], ids=["blanked", "static-value"])
@pytest.mark.parametrize("name", [name for name, variant in VARIANTS.items() if variant.leaked_before])
def test_the_previous_mapping_fails_the_same_check(
    origin: tuple[RecordingOrigin, LoopbackServer], name: str, blank: str
) -> None:
    recorder, server = origin
    api = preview_api(server.url, old_template(blank))
    # an empty mapping is not applied, a non-empty one is added beside the client's: either way it leaks
    assert origin_received_token(recorder, old_viewer_request, api, VARIANTS[name]) == (True, True)
