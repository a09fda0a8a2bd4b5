"""The local CloudFront's relay to an origin (``preview_local.front_door.OriginRelay``) over real sockets.

As CloudFront: the origin's timeouts are the template's (an origin that accepts nothing, or answers
nothing in time, is a 504), the request goes on as sent with nothing the viewer sends after it, and
the answer flows back as the origin writes it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from email.message import Message
from typing import Any

import pytest
from preview_local.cfn_template import project_template
from preview_local.front_door import FLEET_INGRESS_ORIGIN_ID, OriginRelay, OriginTimeouts
from preview_local.http_messages import HttpRequest
from preview_local.http_server import body_framing

SHORT = OriginTimeouts(connect_seconds=1.0, attempts=1, read_seconds=0.5)


def fleet_ingress_origin(template: dict[str, Any]) -> dict[str, Any]:
    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::CloudFront::Distribution":
            for origin in resource["Properties"]["DistributionConfig"]["Origins"]:
                if origin.get("Id") == FLEET_INGRESS_ORIGIN_ID:
                    found: dict[str, Any] = origin
                    return found
    raise AssertionError("the template has no fleet-ingress origin")


def test_the_origin_timeouts_are_the_ones_the_template_sets_on_the_fleet_ingress() -> None:
    template = project_template()
    origin = fleet_ingress_origin(template)
    custom = origin["CustomOriginConfig"]

    timeouts = OriginTimeouts.from_template(template)

    assert timeouts.read_seconds == float(custom.get("OriginReadTimeout", 30))
    assert timeouts.connect_seconds == float(origin.get("ConnectionTimeout", 10))
    assert timeouts.attempts == int(origin.get("ConnectionAttempts", 3))


class Origin:
    """A TCP origin that records what it receives and answers with ``answer`` (or not at all)."""

    def __init__(self, answer: bytes | None) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received = b""
        self.answer = answer
        self.done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with self.listener:
            connection, _ = self.listener.accept()
        with connection:
            connection.settimeout(2)
            try:
                while b"\r\n\r\n" not in self.received or not self.received.endswith(b"}"):
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    self.received += chunk
            except TimeoutError:
                pass
            if self.answer is not None:
                connection.sendall(self.answer)
            else:
                self.done.wait(5)
        self.done.set()


@pytest.fixture
def viewer() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def relay(origin_port: int, viewer_side: socket.socket, head: HttpRequest) -> str:
    framing = Message()
    for name, value in head.headers:
        framing[name] = value
    with viewer_side.makefile("rb") as reader:
        return OriginRelay(head, origin_port, SHORT).run(viewer_side, reader, body_framing(framing))


def answer_of(side: socket.socket) -> bytes:
    side.settimeout(5)
    received = b""
    while chunk := side.recv(65536):
        received += chunk
    return received


POST = HttpRequest(
    "POST",
    "/@vite/client",
    "v=1",
    (("Host", "sbx.sandboxes.localhost"), ("Content-Length", "2"), ("Connection", "keep-alive")),
)


def test_the_request_goes_on_as_sent_and_nothing_after_its_body(
    viewer: tuple[socket.socket, socket.socket],
) -> None:
    origin = Origin(b"HTTP/1.1 204 No Content\r\n\r\n")
    ours, theirs = viewer
    theirs.sendall(b"{}GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")

    outcome = relay(origin.port, ours, POST)
    ours.shutdown(socket.SHUT_WR)

    assert outcome == "204"
    assert origin.received.startswith(b"POST /@vite/client?v=1 HTTP/1.1\r\n")
    assert b"Connection: close\r\n" in origin.received
    assert b"keep-alive" not in origin.received
    assert origin.received.endswith(b"\r\n\r\n{}")
    assert b"smuggled" not in origin.received
    assert answer_of(theirs).startswith(b"HTTP/1.1 204 ")


def test_an_origin_that_answers_nothing_in_time_is_a_504(viewer: tuple[socket.socket, socket.socket]) -> None:
    origin = Origin(None)
    ours, theirs = viewer
    theirs.sendall(b"{}")

    outcome = relay(origin.port, ours, POST)
    ours.shutdown(socket.SHUT_WR)
    origin.done.set()

    assert outcome.startswith("504")
    assert answer_of(theirs).startswith(b"HTTP/1.1 504 Gateway Timeout\r\n")


def test_an_origin_that_accepts_no_connection_is_a_504(viewer: tuple[socket.socket, socket.socket]) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, never listening: connections are refused
        ours, theirs = viewer

        outcome = relay(port, ours, POST)
        ours.shutdown(socket.SHUT_WR)

    assert outcome.startswith("origin unreachable")
    assert answer_of(theirs).startswith(b"HTTP/1.1 504 ")
