"""WebSocket streams through the local stack over real sockets: what the edge refuses never reaches
the app, and the app's own log proves it (it logs every connection it accepts).

Every path is verified at the edge (``PreviewEdge``), WebSockets as HTTP: refused are no cookie,
garbage, an expired token, another sandbox's token, a retired key's token, a read token on the
input stream path and on its encoded and case variants; each gets the denial page with its reason.
Let through (to the fleet ingress, then the app): interact, and read on the desktop's stream.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any

import pytest
from preview_local.stack import SIGNING_KEYS_REFRESH_SECONDS

from tests.e2e.local_stack import LocalStack, fetch
from tests.e2e.test_operator_cli import operator

pytestmark = pytest.mark.e2e

INPUT_STREAM = "/input/stream"


@dataclass(frozen=True)
class Handshake:
    status: int
    head: str
    first_bytes: bytes

    @property
    def reason(self) -> str | None:
        """The denial page's reason (its ``preview-event`` JSON), if this is one."""
        found = re.search(rb'"reason": "([a-z_]+)"', self.first_bytes)
        return found.group(1).decode() if found else None


def upgrade(stack: LocalStack, sandbox_id: str, path: str, cookie: str = "") -> Handshake:
    """A WebSocket upgrade on the preview host over a real socket; the answer's head and first bytes."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {sandbox_id}.{stack.demo['preview_domain']}:{stack.port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Protocol: binary",
        f"Origin: {stack.api_url}",
    ]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as client:
        client.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = client.recv(4096)
            if not chunk:
                break
            received += chunk
        head, _, rest = received.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status == 101 and len(rest) < 2:
            rest += client.recv(4096)
        elif status != 101:  # the denial page: read it all (it names the reason)
            length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            wanted = int(length.group(1)) if length else 1 << 20
            while len(rest) < wanted and (chunk := client.recv(65536)):
                rest += chunk
    return Handshake(status, head.decode("latin-1"), rest)


def origin_lines(stack: LocalStack) -> list[str]:
    return [
        line
        for line in stack.stderr_path.read_text(encoding="utf-8").splitlines()
        if line.startswith("[origin]")
    ]


def exchanged(stack: LocalStack, sandbox_id: str, token: str) -> str:
    """The cookies a browser holds after opening the token's link: the session, its end marker and
    the origin assertion the edge forwards to the ingress (``name=value; ...``)."""
    reply = fetch(f"{stack.preview_origin(sandbox_id)}/?mt={token}")
    assert reply.status == 302, reply.text
    return "; ".join(value.split(";", 1)[0] for value in reply.headers.get_all("Set-Cookie", []))


def session(token: str) -> str:
    return f"__Host-mp_session={token}"


def mint(stack: LocalStack, sandbox_id: str, scope: str, expires_in: int = 600) -> str:
    reply = stack.mint(stack.demo["api_key"], sandbox_id, {"scope": scope, "expires_in": expires_in})
    assert reply.status == 200, reply.text
    token: str = reply.json()["token"]
    return token


def assert_refused_before_the_origin(stack: LocalStack, sandbox_id: str, path: str, cookie: str) -> Handshake:
    marker = secrets.token_hex(6)
    target = f"{path}{'&' if '?' in path else '?'}attempt-{marker}=1"
    before = origin_lines(stack)

    answer = upgrade(stack, sandbox_id, target, cookie)

    assert answer.status in (401, 403), answer.head
    wait_for_log_line(stack, marker)  # the front door logs after answering
    after = origin_lines(stack)
    assert after == before, "the app accepted a connection for a refused stream"
    assert not any(marker in line for line in after)
    return answer


def wait_for_log_line(stack: LocalStack, text: str) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in stack.stderr_path.read_text(encoding="utf-8").splitlines():
            if text in line:
                return line
        time.sleep(0.05)
    raise AssertionError(f"no log line with {text!r}")


@pytest.fixture(scope="module")
def desktop(stack: LocalStack) -> str:
    if not stack.demo["desktop_available"]:
        pytest.fail("the desktop sandbox is not running: `make desktop` installs its Debian packages")
    sandbox_id: str = stack.demo["desktop_sandbox_id"]
    return sandbox_id


def test_an_upgrade_without_a_cookie_is_refused_before_the_origin(stack: LocalStack, desktop: str) -> None:
    answer = assert_refused_before_the_origin(stack, desktop, stack.demo["stream_path"], "")
    assert answer.reason == "no_token"


@pytest.mark.parametrize("value", ["garbage", "mp_", "mp_eyJhbGciOiJub25lIn0.e30."])
def test_an_upgrade_with_garbage_is_refused_before_the_origin(
    stack: LocalStack, desktop: str, value: str
) -> None:
    answer = assert_refused_before_the_origin(stack, desktop, stack.demo["stream_path"], session(value))
    assert answer.reason == "invalid_token"


def test_an_upgrade_with_an_expired_token_is_refused_before_the_origin(
    stack: LocalStack, desktop: str
) -> None:
    token = mint(stack, desktop, "interact", expires_in=1)
    time.sleep(2.1)  # let it expire (the check is on the refusal, not on the time)

    answer = assert_refused_before_the_origin(stack, desktop, stack.demo["stream_path"], session(token))
    assert answer.reason == "expired"


def test_another_sandboxs_token_is_refused_before_the_origin(stack: LocalStack, desktop: str) -> None:
    token = mint(stack, stack.demo["sandbox_id"], "interact")

    answer = assert_refused_before_the_origin(stack, desktop, stack.demo["stream_path"], session(token))
    assert answer.reason == "wrong_sandbox"


def test_a_retired_keys_token_is_refused_before_the_origin(stack: LocalStack, desktop: str) -> None:
    refresh = float(SIGNING_KEYS_REFRESH_SECONDS) + 1  # functions and the edge re-read keys on this timer
    retiring = operator(stack, "signing-key", "rotate")["kid"]
    time.sleep(refresh)
    token = mint(stack, desktop, "interact")
    header = json.loads(base64.urlsafe_b64decode(token.removeprefix("mp_").split(".")[0] + "=="))
    assert header["kid"] == retiring
    assert upgrade(stack, desktop, stack.demo["stream_path"], exchanged(stack, desktop, token)).status == 101
    operator(stack, "signing-key", "retire", retiring)
    time.sleep(refresh)

    answer = assert_refused_before_the_origin(stack, desktop, stack.demo["stream_path"], session(token))
    assert answer.reason == "invalid_token"


@pytest.mark.parametrize(
    "path",
    [INPUT_STREAM, "/INPUT/stream", "/Input/stream", "/%69nput/stream", "/%2569nput/stream",
     "/input;x/stream", "/input./stream", "/input%2e/stream", "/static/..;/input/stream"],
)  # fmt: skip
def test_a_read_token_on_the_input_stream_is_refused_before_the_origin(stack: LocalStack, path: str) -> None:
    sandbox_id = stack.demo["sandbox_id"]
    token = mint(stack, sandbox_id, "read")

    assert_refused_before_the_origin(stack, sandbox_id, path, session(token))


def test_an_interact_token_opens_the_input_stream(stack: LocalStack) -> None:
    sandbox_id = stack.demo["sandbox_id"]
    before = len(origin_lines(stack))

    token = mint(stack, sandbox_id, "interact")
    answer = upgrade(stack, sandbox_id, INPUT_STREAM, exchanged(stack, sandbox_id, token))

    assert answer.status == 101, answer.head
    assert f"input stream of {sandbox_id} (interact)".encode() in answer.first_bytes
    assert any("connection accepted" in line for line in origin_lines(stack)[before:])
    status: dict[str, Any] = stack.origin_status(sandbox_id)
    assert "input:interact" in status["streams_opened"]


@pytest.mark.parametrize("scope", ["read", "interact"])
def test_the_desktop_stream_speaks_rfb_for_both_scopes(stack: LocalStack, desktop: str, scope: str) -> None:
    token = mint(stack, desktop, scope)
    answer = upgrade(stack, desktop, stack.demo["stream_path"], exchanged(stack, desktop, token))

    assert answer.status == 101, answer.head
    assert b"RFB 003.008" in answer.first_bytes
    assert f"desktop:{scope}" in stack.origin_status(desktop)["streams_opened"]


def test_the_origin_never_sees_our_cookies_on_a_stream(stack: LocalStack, desktop: str) -> None:
    token = mint(stack, desktop, "read")

    answer = upgrade(
        stack, desktop, stack.demo["stream_path"], f"theme=dark; {exchanged(stack, desktop, token)}"
    )

    assert answer.status == 101
    status = stack.origin_status(desktop)
    assert status["credential_seen"] is False
    assert "theme" in status["cookie_names"]
