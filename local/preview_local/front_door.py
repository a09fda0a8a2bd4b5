"""The one local address, dispatched by ``Host`` as DNS and CloudFront dispatch it in AWS.

* ``<sandbox-id>.<preview-domain>:PORT`` - the local CloudFront of the preview host. Every request,
  HTTP or WebSocket, on any path, first meets the viewer-request function ``PreviewEdge`` (its
  Python mirror, :class:`preview_local.edge.PreviewEdge`), which picks one route:

  - ``exchange`` and ``denied``: the (rewritten) request goes to the preview REST API
    (:class:`~preview_local.gateway.RestApiGateway`: the authorizer, the exchange, the denial
    page). Its answer reaches the viewer as it is: no viewer-response function runs (there is
    none any more; CloudFront would not run one on a status of 400 or more anyway, see
    "Restrictions on all edge functions",
    https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/edge-functions-restrictions.html).
  - ``ingress``: the request goes to the fleet ingress (``preview_ingress``, the real one, run
    in-process), as ``cf.selectRequestOriginById('fleet-ingress')`` sends it there
    (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/helper-functions-origin-modification.html),
    with the origin's custom header ``X-Preview-Ingress-Secret`` added (and, to either origin,
    ``CloudFront-Forwarded-Proto``, which the template's origin request policy asks CloudFront
    for: ``http`` here); a viewer's own header of
    that name is replaced, never passed ("Add custom headers to origin requests",
    https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/add-origin-custom-headers.html).
    The request target goes on byte for byte as the viewer sent it (no decoding, no re-encoding:
    ``/@vite/client`` stays ``/@vite/client``), the body is streamed as it arrives, the answer
    streamed back as it comes (server-sent events one by one, large downloads), and a WebSocket
    upgrade becomes a two-way byte stream once the ingress answers ``101``
    ("Request and response behavior for custom origins",
    https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/RequestAndResponseBehaviorCustomOrigin.html;
    "Use WebSockets with CloudFront distributions",
    https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/distribution-working-with.websockets.html).
    The origin's connection and response timeouts are the template's
    (:class:`OriginTimeouts`): no connection in time is a ``504``, as is no first byte in time.

* ``127.0.0.1:PORT`` / ``localhost:PORT`` - the control plane REST API (``/api/...``), plus
  what exists only locally: the demo embedding page (``/``, ``/demo/...``), the embed helper
  (``/embed/preview-embed-<version>.js``) and the dev identity provider (``/dev-idp/...``).
  Any other path goes to the control plane API, which answers unknown routes as API Gateway does.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import secrets
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from preview_local.demo_app import PAGE_PATHS, DemoEmbeddingApp
from preview_local.dev_idp import PATH_PREFIX as DEV_IDP_PREFIX
from preview_local.dev_idp import DevIdentityProvider
from preview_local.embed_script import PATH_PREFIX as EMBED_PREFIX
from preview_local.gateway import RestApiGateway
from preview_local.http_messages import HttpRequest, HttpResponse
from preview_local.http_server import FramingError, copy_body
from preview_local.streams import is_websocket_upgrade, request_head

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost"})
INGRESS_SECRET_HEADER = "X-Preview-Ingress-Secret"
FORWARDED_PROTO_HEADER = "CloudFront-Forwarded-Proto"
FLEET_INGRESS_ORIGIN_ID = "fleet-ingress"
_CHUNK = 65536
# Hop-by-hop fields (RFC 9110 7.6.1) are the proxy's own: it frames the request to the origin itself.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"})


class EdgeDecisionLike(Protocol):
    @property
    def route(self) -> Literal["exchange", "denied", "ingress"]: ...

    @property
    def request(self) -> HttpRequest: ...

    @property
    def reason(self) -> str | None: ...


class EdgeFunction(Protocol):
    """The viewer-request function: :class:`preview_local.edge.PreviewEdge`."""

    def decide(self, request: HttpRequest) -> Any: ...


@dataclass(frozen=True)
class OriginTimeouts:
    """A CloudFront custom origin's timeouts (``CustomOriginConfig`` / ``ConnectionTimeout``...).

    Defaults are CloudFront's: 10 s to connect, 3 attempts, 30 s for the first byte and between
    bytes ("Values that you specify when you create or update a distribution", Origin settings:
    https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/DownloadDistValuesOrigin.html).
    A WebSocket, once upgraded, is not held to the response timeout: CloudFront keeps it open
    while either side is alive (its idle timeout is 10 minutes, which no local test reaches).
    """

    connect_seconds: float = 10.0
    attempts: int = 3
    read_seconds: float = 30.0

    @classmethod
    def from_template(
        cls, template: Mapping[str, Any], origin_id: str = FLEET_INGRESS_ORIGIN_ID
    ) -> OriginTimeouts:
        """The timeouts the template sets on the origin ``origin_id`` (CloudFront's defaults if none)."""
        for resource in (template.get("Resources") or {}).values():
            if not isinstance(resource, dict) or resource.get("Type") != "AWS::CloudFront::Distribution":
                continue
            config = (resource.get("Properties") or {}).get("DistributionConfig") or {}
            for origin in config.get("Origins") or []:
                if isinstance(origin, dict) and origin.get("Id") == origin_id:
                    custom = origin.get("CustomOriginConfig") or {}
                    return cls(
                        connect_seconds=_number(origin.get("ConnectionTimeout"), cls.connect_seconds),
                        attempts=int(_number(origin.get("ConnectionAttempts"), cls.attempts)),
                        read_seconds=_number(custom.get("OriginReadTimeout"), cls.read_seconds),
                    )
        return cls()


def _number(value: Any, default: float) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


@dataclass(frozen=True)
class OriginRelay:
    """One viewer request sent on to the fleet ingress, its answer streamed back: takes the connection.

    A plain request goes with ``Connection: close`` and exactly its own body (framed as the viewer
    framed it): nothing the viewer sends after it can reach the ingress without meeting the edge
    first. A WebSocket upgrade keeps ``Upgrade``/``Connection``; after the ingress's answer the
    bytes flow both ways until either side closes.
    """

    request: HttpRequest
    port: int
    timeouts: OriginTimeouts
    host: str = "127.0.0.1"
    log_reason: str | None = None
    request_id: str | None = None

    def run(self, client: socket.socket, reader: Any, length: int | None) -> str:
        upgrade = is_websocket_upgrade(self.request)
        headers = [(name, value) for name, value in self.request.headers if name.lower() not in _HOP_BY_HOP]
        if upgrade:
            headers += [("Connection", "Upgrade"), ("Upgrade", self.request.header("Upgrade") or "websocket")]
        else:
            headers.append(("Connection", "close"))
        target = self.request.path + (f"?{self.request.query}" if self.request.query else "")
        try:
            upstream = self._connect()
        except OSError:
            _answer(client, 504, "the origin did not accept a connection in time")
            return "origin unreachable (504)"
        try:
            upstream.sendall(request_head(self.request.method, target, headers))
            try:
                copy_body(length, reader, upstream.sendall)
            except FramingError as error:
                _answer(client, error.status, error.text)
                return f"bad request body ({error.status})"
            if upgrade:
                return self._both_ways(client, reader, upstream)
            return self._answer_back(client, upstream)
        except OSError:
            return "connection error"
        finally:
            with contextlib.suppress(OSError):
                upstream.shutdown(socket.SHUT_RDWR)
            upstream.close()

    def _connect(self) -> socket.socket:
        failure: OSError = OSError("no attempt")
        for _ in range(max(1, self.timeouts.attempts)):
            try:
                connection = socket.create_connection(
                    (self.host, self.port), timeout=self.timeouts.connect_seconds
                )
                connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return connection
            except OSError as error:
                failure = error
        raise failure

    def _answer_back(self, client: socket.socket, upstream: socket.socket) -> str:
        upstream.settimeout(self.timeouts.read_seconds)
        status = ""
        while True:
            try:
                data = upstream.recv(_CHUNK)
            except TimeoutError:
                if not status:
                    _answer(client, 504, "the origin did not answer in time")
                    return "504 origin response timeout"
                return f"{status} (origin response timeout)"
            if not data:
                return status or "502 origin closed without an answer"
            if not status:
                status = _status_of(data)
                if self.request_id:
                    data = _with_response_header(data, REQUEST_ID_HEADER, self.request_id)
            client.sendall(data)

    def _both_ways(self, client: socket.socket, reader: Any, upstream: socket.socket) -> str:
        upstream.settimeout(None)

        def viewer_to_origin() -> None:
            with contextlib.suppress(OSError, ValueError):
                while data := reader.read1(_CHUNK):
                    upstream.sendall(data)
            with contextlib.suppress(OSError):
                upstream.shutdown(socket.SHUT_WR)

        forward = threading.Thread(target=viewer_to_origin, name="front-door-ws", daemon=True)
        forward.start()
        status = ""
        with contextlib.suppress(OSError):
            while data := upstream.recv(_CHUNK):
                if not status and self.request_id:
                    data = _with_response_header(data, REQUEST_ID_HEADER, self.request_id)
                status = status or _status_of(data)
                client.sendall(data)
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_RDWR)
        return f"{status} stream ended" if status == "101" else status or "502 origin closed"


def _status_of(first_bytes: bytes) -> str:
    """The status code of a response, from its first bytes (``HTTP/1.1 200 OK``), for the log line."""
    parts = first_bytes.split(b"\r\n", 1)[0].split(b" ")
    return parts[1].decode("ascii", "replace") if len(parts) > 1 and parts[1].isdigit() else "???"


def _answer(client: socket.socket, status: int, text: str) -> None:
    reason = {400: "Bad Request", 413: "Content Too Large", 501: "Not Implemented", 504: "Gateway Timeout"}
    body = text.encode()
    head = (
        f"HTTP/1.1 {status} {reason.get(status, 'Error')}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode("latin-1")
    with contextlib.suppress(OSError):
        client.sendall(head + body)


REQUEST_ID_HEADER = "X-Amz-Cf-Id"
"""CloudFront's id for each request: sent to the origin and back to the viewer (a viewer's own copy
is replaced). https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/adding-cloudfront-headers.html
(`X-Amz-Cf-Id`), and the access log's `x-edge-request-id`."""


def new_request_id() -> str:
    """An id shaped like CloudFront's: 56 URL-safe base64 characters."""
    return base64.urlsafe_b64encode(secrets.token_bytes(42)).decode("ascii")


def as_sent_to_an_origin(request: HttpRequest, request_id: str) -> HttpRequest:
    """The headers CloudFront adds to a request for either origin, a viewer's own of those names
    replaced: the request id, and ``CloudFront-Forwarded-Proto`` (the template's origin request
    policy adds it; the local front door serves ``http``)."""
    ours = {REQUEST_ID_HEADER.lower(), FORWARDED_PROTO_HEADER.lower()}
    headers = tuple((n, v) for n, v in request.headers if n.lower() not in ours)
    return dataclasses.replace(
        request, headers=(*headers, (REQUEST_ID_HEADER, request_id), (FORWARDED_PROTO_HEADER, "http"))
    )


def _with_response_header(first_bytes: bytes, name: str, value: str) -> bytes:
    """The header added after the status line of a relayed answer (its first bytes)."""
    line_end = first_bytes.find(b"\r\n")
    if line_end < 0:
        return first_bytes
    return (
        first_bytes[: line_end + 2] + f"{name}: {value}\r\n".encode("latin-1") + first_bytes[line_end + 2 :]
    )


@dataclass(frozen=True)
class FrontDoor:
    preview_domain: str
    control_plane: RestApiGateway
    data_plane: RestApiGateway
    demo: DemoEmbeddingApp
    identity_provider: DevIdentityProvider
    edge: EdgeFunction
    ingress_secret: str = dataclasses.field(repr=False)
    ingress_port: Callable[[str], int | None]
    """The port of the fleet ingress that serves a sandbox (``None``: no app of that id)."""
    origin_timeouts: OriginTimeouts = OriginTimeouts()

    def is_preview_host(self, request: HttpRequest) -> bool:
        return request.host_name.endswith("." + self.preview_domain)

    def take_over(self, request: HttpRequest) -> OriginRelay | HttpResponse | None:
        """Before the body is read: a request the edge sends to the ingress is relayed from here."""
        if not self.is_preview_host(request):
            return None
        decision = self.edge.decide(request)
        if decision.route != "ingress":
            return None
        sandbox_id = request.host_name.split(".", 1)[0]
        port = self.ingress_port(sandbox_id)
        if port is None:  # a sandbox with a session but no app behind it: CloudFront's 502
            return HttpResponse.text(502, "no app is registered for this sandbox in the local stack\n")
        request_id = new_request_id()
        forwarded = tuple(
            (name, value)
            for name, value in as_sent_to_an_origin(decision.request, request_id).headers
            if name.lower() != INGRESS_SECRET_HEADER.lower()
        )
        forwarded += ((INGRESS_SECRET_HEADER, self.ingress_secret),)
        return OriginRelay(
            dataclasses.replace(decision.request, headers=forwarded),
            port,
            self.origin_timeouts,
            request_id=request_id,
        )

    def respond(self, request: HttpRequest) -> HttpResponse:
        if self.is_preview_host(request):
            decision = self.edge.decide(request)
            if decision.route == "ingress":  # take_over relays these before their body is read
                return HttpResponse.text(502, "local stack error: an ingress request was not relayed\n")
            request_id = new_request_id()
            response = self.data_plane.handle(as_sent_to_an_origin(decision.request, request_id))
            reason = decision.reason or response.log_reason
            headers = tuple((n, v) for n, v in response.headers if n.lower() != REQUEST_ID_HEADER.lower())
            return dataclasses.replace(
                response, headers=(*headers, (REQUEST_ID_HEADER, request_id)), log_reason=reason
            )
        if request.host_name in LOOPBACK_NAMES:
            if request.path.startswith(DEV_IDP_PREFIX + "/"):
                return self.identity_provider.respond(request)
            if request.path in PAGE_PATHS or request.path.startswith(("/demo/", EMBED_PREFIX)):
                return self.demo.respond(request)
            return self.control_plane.handle(request)
        return HttpResponse.text(421, f"this local stack serves 127.0.0.1 and *.{self.preview_domain}")
