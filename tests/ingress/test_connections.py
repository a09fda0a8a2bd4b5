"""Both of the ingress's HTTP/1.1 hops, as a proxy must keep them: connections kept alive and reused,
requests answered in order, bodies and upgrades on the same connection as plain GETs, limits on a
request's head, and an app that closes idle connections, answers until close, sends 103 first, or
breaks off mid-body."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.client
import json
import random
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator

import pytest
from preview_ingress.viewer import ViewerConnection, ViewerRequest

from tests.ingress.conftest import PATTERN, SANDBOX, Ingress, LoopThread, Sandbox, assertion, cloudfront

GENEROUS_SECONDS = 15.0  # a bound on waiting, never a claim about speed


def _head_lines(extra: dict[str, str] | None = None) -> str:
    headers = cloudfront(assertion(), **(extra or {}))
    return "".join(f"{name}: {value}\r\n" for name, value in headers.items())


def _raw(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data`` on one connection and read until the ingress closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as viewer:
        viewer.sendall(data)
        received = b""
        while chunk := viewer.recv(65536):
            received += chunk
    return received


def _responses(raw: bytes) -> list[tuple[int, bytes]]:
    """Split HTTP/1.1 responses framed by Content-Length: ``(status, body)`` each."""
    answers = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next(
            int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")
        )
        answers.append((int(lines[0].split()[1]), rest[:length]))
        raw = rest[length:]
    return answers


def _connection(ingress: Ingress) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", ingress.running.port, timeout=10)


def test_requests_on_one_viewer_connection_reuse_one_connection_to_the_app(
    ingress: Ingress, sandbox: Sandbox
) -> None:
    viewer = _connection(ingress)
    for _ in range(3):
        viewer.request("GET", "/echo/again", headers=cloudfront(assertion()))
        answer = viewer.getresponse()
        assert answer.status == 200
        answer.read()
    viewer.close()

    assert len(sandbox.state.requests) == 3
    assert len({seen["peer"] for seen in sandbox.state.requests}) == 1  # one upstream connection


def test_pipelined_requests_are_answered_in_order(ingress: Ingress, sandbox: Sandbox) -> None:
    requests = "".join(
        f"GET /echo/{n} HTTP/1.1\r\nHost: {SANDBOX}.preview.example\r\n{_head_lines()}"
        + ("Connection: close\r\n" if n == 3 else "")
        + "\r\n"
        for n in (1, 2, 3)
    )

    answers = _responses(_raw(ingress.running.port, requests.encode()))

    assert [status for status, _ in answers] == [200, 200, 200]
    assert [json.loads(body)["path"] for _, body in answers] == ["/echo/1", "/echo/2", "/echo/3"]


def test_a_body_and_a_websocket_upgrade_work_after_plain_gets_on_the_same_connection(
    ingress: Ingress, sandbox: Sandbox
) -> None:
    viewer = _connection(ingress)
    viewer.request("GET", "/echo/first", headers=cloudfront(assertion()))
    assert viewer.getresponse().read()
    viewer.request("POST", "/echo/posted", body=b"x" * 1000, headers=cloudfront(assertion()))
    posted = viewer.getresponse()
    seen = json.loads(posted.read())
    viewer.request("GET", "/echo/after", headers=cloudfront(assertion()))
    after = viewer.getresponse()
    assert after.status == 200
    after.read()
    viewer.close()

    assert posted.status == 200
    assert seen["body_length"] == 1000
    assert [r["path"] for r in sandbox.state.requests] == ["/echo/first", "/echo/posted", "/echo/after"]

    upgrade = (
        f"GET /echo/plain HTTP/1.1\r\nHost: h\r\n{_head_lines()}\r\n"
        f"GET /ws HTTP/1.1\r\nHost: h\r\n{_head_lines()}Connection: Upgrade\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Protocol: vite-hmr\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", ingress.running.port), timeout=10) as raw:
        raw.sendall(upgrade.encode())
        received = b""
        while b"101 Switching Protocols" not in received or not received.endswith(b"hello from the app"):
            chunk = raw.recv(65536)
            assert chunk, received
            received += chunk
    assert received.startswith(b"HTTP/1.1 200")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in received


def test_a_large_body_pipelined_behind_a_get_reaches_the_app_whole(ingress: Ingress) -> None:
    body = bytes(range(256)) * 20_000  # 5 MB, sent while the GET before it is answered
    requests = (
        f"GET /echo/first HTTP/1.1\r\nHost: h\r\n{_head_lines()}\r\n"
        f"POST /upload HTTP/1.1\r\nHost: h\r\n{_head_lines()}Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body

    answers = _responses(_raw(ingress.running.port, requests))

    assert [status for status, _ in answers] == [200, 200]
    assert json.loads(answers[1][1])["sha256"] == hashlib.sha256(body).hexdigest()


def test_a_chunked_upload_reaches_the_app_whole(ingress: Ingress, sandbox: Sandbox) -> None:
    parts = [bytes([n]) * 100_000 for n in range(20)]
    viewer = _connection(ingress)
    viewer.request("POST", "/upload", body=iter(parts), headers=cloudfront(assertion()), encode_chunked=True)
    seen = json.loads(viewer.getresponse().read())
    viewer.close()

    assert seen["bytes"] == 2_000_000
    assert seen["sha256"] == hashlib.sha256(b"".join(parts)).hexdigest()


def test_a_head_too_large_gets_431_and_a_malformed_request_400(ingress: Ingress) -> None:
    huge = f"GET /echo HTTP/1.1\r\nHost: h\r\n{_head_lines()}X-Big: {'a' * 200_000}\r\n\r\n"
    malformed = b"GET /echo HTTP/1.1\r\nHost h\r\nno colon here\r\n\r\n"

    assert _raw(ingress.running.port, huge.encode()).startswith(b"HTTP/1.1 431 ")
    assert _raw(ingress.running.port, malformed).startswith(b"HTTP/1.1 400 ")


class _Recorded(asyncio.Transport):
    """The viewer's side of a connection: what the ingress writes to it."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class _Relayed:
    """Stands in for the proxy behind the viewer's connection: records what it is asked to relay."""

    def __init__(self) -> None:
        self.viewer_connections: set[ViewerConnection] = set()
        self.requests: list[str] = []

    async def relay_simple(self, viewer: ViewerConnection, request: ViewerRequest) -> bool:
        self.requests.append(request.raw_path)
        return True

    def answer_now(self, viewer: ViewerConnection, request: ViewerRequest) -> bool:
        return False


def test_a_head_too_large_that_arrives_in_one_read_gets_431_and_is_never_relayed() -> None:
    """A loaded ingress can read a whole request at once (the kernel holds it): the limit still holds."""
    huge = f"GET /echo HTTP/1.1\r\nHost: h\r\n{_head_lines()}X-Big: {'a' * 200_000}\r\n\r\n".encode()

    async def one_read() -> tuple[bytes, list[str]]:
        proxy, transport = _Relayed(), _Recorded()
        viewer = ViewerConnection(proxy, asyncio.Protocol)
        viewer.connection_made(transport)
        viewer.data_received(huge)
        await asyncio.sleep(0.05)
        viewer.connection_lost(None)
        return bytes(transport.written), proxy.requests

    written, relayed = asyncio.run(one_read())

    assert written.startswith(b"HTTP/1.1 431 ")
    assert relayed == []


def test_an_http_1_0_request_is_answered_and_its_connection_closed(ingress: Ingress) -> None:
    raw = _raw(ingress.running.port, f"GET /echo/old HTTP/1.0\r\n{_head_lines()}\r\n".encode())

    status, body = _responses(raw)[0]
    assert status == 200
    assert json.loads(body)["path"] == "/echo/old"
    assert b"\r\nConnection: close\r\n" in raw.partition(b"\r\n\r\n")[0] + b"\r\n"


# ---- apps that do what real apps do to a proxy --------------------------------------------------


Answerer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
def raw_app() -> Iterator[Callable[[Answerer], str]]:
    """An app written on bare sockets: it answers each connection as the test says."""
    thread = LoopThread()
    servers: list[asyncio.Server] = []
    handlers: set[asyncio.Task[None]] = set()

    def start(answer: Answerer) -> str:
        async def answer_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            handlers.add(asyncio.current_task())  # type: ignore[arg-type]
            try:
                await answer(reader, writer)
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()

        async def go() -> int:
            server = await asyncio.start_server(answer_then_close, "127.0.0.1", 0)
            servers.append(server)
            return int(server.sockets[0].getsockname()[1])

        return f"http://127.0.0.1:{thread.run(go())}"

    yield start

    async def stop() -> None:
        for server in servers:
            server.close()
        for handler in handlers:
            handler.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    thread.run(stop())
    thread.stop()


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def _get(ingress: Ingress, path: str) -> tuple[int, bytes, dict[str, str]]:
    viewer = _connection(ingress)
    try:
        viewer.request("GET", path, headers=cloudfront(assertion()))
        answer = viewer.getresponse()
        return answer.status, answer.read(), dict(answer.getheaders())
    finally:
        viewer.close()


def test_an_app_that_closes_idle_connections_still_answers_every_request(
    make_ingress: Callable[..., Ingress], raw_app: Callable[[Answerer], str]
) -> None:
    connections = 0

    async def answer_once_then_close_when_idle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        nonlocal connections
        connections += 1
        await _read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await asyncio.sleep(0.1)  # Node's keepAliveTimeout, shortened
        writer.close()

    ingress = make_ingress(upstream=raw_app(answer_once_then_close_when_idle), sandbox_id=SANDBOX)

    first = _get(ingress, "/a")
    time.sleep(0.3)  # the app has closed the connection the ingress keeps
    second = _get(ingress, "/b")

    assert first[:2] == second[:2] == (200, b"ok")
    assert connections == 2


_ANSWERS = {
    b"/small": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"/head": b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
    b"/204": b"HTTP/1.1 204 No Content\r\n\r\n",
    b"/304": b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\n\r\n',
    b"/large": b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n" + b"L" * 200_000,
    b"/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
}


def test_answers_of_every_kind_on_a_warm_connection_are_relayed_as_the_first(
    make_ingress: Callable[..., Ingress], raw_app: Callable[[Answerer], str]
) -> None:
    """After the first request (its assertion verified, a connection to the app kept) a request is
    answered with no task of its own when the answer has no body or a small whole one, and goes on
    in a task otherwise: every kind arrives as the app sent it, on the one connection to the app."""
    connections = 0

    async def answer_by_path(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        with contextlib.suppress(asyncio.IncompleteReadError):
            while True:
                target = (await _read_head(reader)).split(b" ", 2)[1]
                writer.write(_ANSWERS[target])
                await writer.drain()

    ingress = make_ingress(upstream=raw_app(answer_by_path), sandbox_id=SANDBOX)
    headers = cloudfront(assertion())
    viewer = _connection(ingress)
    answers = []
    try:
        for method, path in [
            ("GET", "/small"),
            ("GET", "/small"),
            ("HEAD", "/head"),
            ("GET", "/204"),
            ("GET", "/304"),
            ("GET", "/large"),
            ("GET", "/chunked"),
            ("GET", "/small"),
        ]:
            viewer.request(method, path, headers=headers)
            answer = viewer.getresponse()
            answers.append((answer.status, answer.getheader("Content-Length"), answer.read()))
    finally:
        viewer.close()

    assert answers == [
        (200, "2", b"ok"),
        (200, "2", b"ok"),
        (200, "1000", b""),
        (204, None, b""),
        (304, None, b""),
        (200, "200000", b"L" * 200_000),
        (200, None, b"hello"),
        (200, "2", b"ok"),
    ]
    assert connections == 1


def test_a_viewer_gone_before_its_answer_leaves_the_app_connection_to_the_next_request(
    make_ingress: Callable[..., Ingress], raw_app: Callable[[Answerer], str]
) -> None:
    """A viewer that hangs up while its (small) answer is on the way: the answer is dropped, and the
    connection to the app, its answer read whole, serves the next viewer."""
    connections = 0

    async def slow_then_fast(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                if b" /slow " in await _read_head(reader):
                    await asyncio.sleep(0.3)
                writer.write(_ANSWERS[b"/small"])
                await writer.drain()

    ingress = make_ingress(upstream=raw_app(slow_then_fast), sandbox_id=SANDBOX)
    head_lines = _head_lines()
    assert _responses(
        _raw(ingress.running.port, f"GET /small HTTP/1.1\r\nConnection: close\r\n{head_lines}\r\n".encode())
    ) == [(200, b"ok")]
    with socket.create_connection(("127.0.0.1", ingress.running.port)) as gone:
        gone.sendall(f"GET /slow HTTP/1.1\r\n{head_lines}\r\n".encode())
    time.sleep(0.6)  # the slow answer came back meanwhile, to nobody
    after = _raw(
        ingress.running.port, f"GET /small HTTP/1.1\r\nConnection: close\r\n{head_lines}\r\n".encode()
    )

    assert _responses(after) == [(200, b"ok")]
    assert connections == 1


def test_a_request_the_app_drops_on_a_reused_connection_is_sent_once_more_on_a_new_one(
    make_ingress: Callable[..., Ingress], raw_app: Callable[[Answerer], str]
) -> None:
    """An app may close a kept-alive connection as a request arrives on it (its keep-alive timer
    firing): a body-less request that got no answer goes once more, on a new connection, as
    browsers do."""
    seen: list[tuple[int, bytes]] = []

    async def answer_first_drop_second(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = len({number for number, _ in seen}) + 1
        seen.append((connection, (await _read_head(reader)).split(b" ", 2)[1]))
        writer.write(_ANSWERS[b"/small"])
        await writer.drain()
        seen.append((connection, (await _read_head(reader)).split(b" ", 2)[1]))  # then closed, unanswered

    ingress = make_ingress(upstream=raw_app(answer_first_drop_second), sandbox_id=SANDBOX)
    headers = cloudfront(assertion())
    viewer = _connection(ingress)
    try:
        statuses = []
        for path in ("/small", "/again"):
            viewer.request("GET", path, headers=headers)
            answer = viewer.getresponse()
            statuses.append((answer.status, answer.read()))
    finally:
        viewer.close()

    assert statuses == [(200, b"ok"), (200, b"ok")]
    assert seen == [(1, b"/small"), (1, b"/again"), (2, b"/again")]


def _soak_answer(kind: str, number: int) -> bytes:
    body = b"%s%08d" % (kind.encode(), number) * {"mid": 9_000, "big": 120_000}.get(kind, 1)
    if kind == "head":
        return b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
    if kind in ("204", "304"):
        return b"HTTP/1.1 %s X\r\n\r\n" % kind.encode()
    if kind == "chunked":
        return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (
            len(body),
            body,
        )
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


async def _soak_viewer(port: int, head_lines: str, seed: int) -> list[str]:
    """Pipelined batches of requests of every kind on one connection; what came back wrong."""
    draw = random.Random(seed)
    kinds = ["small", "head", "204", "304", "mid", "big", "chunked"]
    wrong: list[str] = []
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for batch_number in range(25):
        batch = [
            (draw.choice(kinds), seed * 1000 + batch_number * 10 + i)
            for i in range(draw.choice([1, 1, 2, 4]))
        ]
        requests = [f"{'HEAD' if kind == 'head' else 'GET'} /{kind}/{number}" for kind, number in batch]
        writer.write("".join(f"{line} HTTP/1.1\r\n{head_lines}\r\n" for line in requests).encode())
        for kind, number in batch:
            expected = _soak_answer(kind, number)
            if kind == "chunked":  # the ingress passes a chunked body on as chunks of its own
                head, _, body = (await reader.readuntil(b"0\r\n\r\n")).partition(b"\r\n\r\n")
                got = head + b"\r\n\r\n" + body
                expected_body = expected.partition(b"\r\n\r\n")[2].split(b"\r\n")[1]
                if not (got.startswith(b"HTTP/1.1 200 ") and expected_body in got):
                    wrong.append(f"{kind} {number}")
                continue
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            body = b"" if kind == "head" else await reader.readexactly(length)
            status = expected.split(b" ", 2)[1]
            if head.split(b" ", 2)[1] != status or body != expected.partition(b"\r\n\r\n")[2]:
                wrong.append(f"{kind} {number}: {head.split(b' ', 2)[1]!r}")
    writer.close()
    return wrong


def test_many_viewers_pipelining_answers_of_every_kind_each_get_their_own_whole(
    make_ingress: Callable[..., Ingress], raw_app: Callable[[Answerer], str]
) -> None:
    """A soak of both ways of answering (with and without a task) and the socket relay: 16 viewers
    send batches of pipelined requests (small, HEAD, 204, 304, 81 KB, 1 MB, chunked) while the app
    closes a kept-alive connection now and then, after an answer or instead of one (as a keep-alive
    timer firing). Every viewer gets every answer, its own, whole and in order."""
    draw = random.Random(13)

    async def answer_then_maybe_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answered = 0
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                kind, number = (await _read_head(reader)).split(b" ", 2)[1].decode().split("/")[1:]
                if answered and draw.random() < 0.03:
                    return  # dropped on a reused connection: the ingress sends it once more
                writer.write(_soak_answer(kind, int(number)))
                await writer.drain()
                answered += 1
                if draw.random() < 0.05:
                    return

    ingress = make_ingress(upstream=raw_app(answer_then_maybe_close), sandbox_id=SANDBOX)
    head_lines = _head_lines()

    async def all_viewers() -> list[str]:
        wrong = await asyncio.gather(
            *(_soak_viewer(ingress.running.port, head_lines, seed) for seed in range(16))
        )
        return [what for each in wrong for what in each]

    assert asyncio.run(asyncio.wait_for(all_viewers(), GENEROUS_SECONDS * 4)) == []


def test_a_body_delimited_by_the_end_of_the_connection_arrives_whole(
    make_ingress: Callable[..., Ingress], raw_app: Callable[[Answerer], str]
) -> None:
    body = b"until close " * 50_000

    async def answer_until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body)
        await writer.drain()
        writer.close()

    ingress = make_ingress(upstream=raw_app(answer_until_close), sandbox_id=SANDBOX)

    status, received, _ = _get(ingress, "/")

    assert (status, received) == (200, body)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    ],
    ids=["content-length", "chunked"],
)
def test_bytes_past_the_end_of_an_answer_never_reach_a_viewer(
    make_ingress: Callable[..., Ingress], raw_app: Callable[[Answerer], str], answer: bytes
) -> None:
    """An app that writes a second answer no request asked for, in the same write as the first: the
    first viewer gets its own answer only, and the next request goes on a new connection, never
    answered with the stray one."""
    stray = b"HTTP/1.1 302 Found\r\nLocation: https://elsewhere.example/\r\nContent-Length: 5\r\n\r\nstray"
    connections = 0

    async def answer_with_a_stray_answer_behind(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        nonlocal connections
        connections += 1
        await _read_head(reader)
        writer.write(answer + stray)
        await writer.drain()
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            await _read_head(reader)  # the connection is not reused: this never comes
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nreused")
            await writer.drain()
            await asyncio.sleep(5)

    ingress = make_ingress(upstream=raw_app(answer_with_a_stray_answer_behind), sandbox_id=SANDBOX)

    first = _get(ingress, "/first")
    second = _get(ingress, "/second")

    assert first[:2] == second[:2] == (200, b"ok")
    assert ("Location" in first[2], "Location" in second[2], connections) == (False, False, 2)


def test_an_early_hints_answer_is_skipped_and_the_final_one_relayed(
    make_ingress: Callable[..., Ingress], raw_app: Callable[[Answerer], str]
) -> None:
    async def answer_with_103_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-App: yes\r\n\r\nfinal")
        await writer.drain()

    ingress = make_ingress(upstream=raw_app(answer_with_103_first), sandbox_id=SANDBOX)

    status, received, headers = _get(ingress, "/")

    assert (status, received, headers["X-App"]) == (200, b"final", "yes")


@pytest.mark.parametrize(
    ("size", "ending"),
    [(1000, "reset"), (5_000_000, "reset"), (5_000_000, "close")],
    ids=["small", "streamed", "streamed-then-closed"],
)
def test_a_body_the_app_breaks_off_never_looks_whole_to_the_viewer(
    make_ingress: Callable[..., Ingress], raw_app: Callable[[Answerer], str], size: int, ending: str
) -> None:
    async def break_off(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"x" * (size // 2))
        await writer.drain()
        if ending == "reset":
            writer.transport.abort()
        else:
            writer.close()

    ingress = make_ingress(upstream=raw_app(break_off), sandbox_id=SANDBOX)
    viewer = _connection(ingress)
    viewer.request("GET", "/", headers=cloudfront(assertion()))
    answer = viewer.getresponse()

    if size <= 64 * 1024:  # read whole before answering: the viewer gets the not-responding page
        assert answer.status == 502
        assert b"Sandbox not responding" in answer.read()
    else:  # already streaming: the viewer's connection is cut short of Content-Length
        assert answer.status == 200
        with pytest.raises(http.client.IncompleteRead):
            answer.read()
    viewer.close()


def test_after_a_large_body_the_same_viewer_connection_answers_the_next_requests(
    ingress: Ingress, sandbox: Sandbox
) -> None:
    size = 8 * 1024 * 1024
    requests = "".join(
        f"GET {path} HTTP/1.1\r\nHost: h\r\n{_head_lines()}"
        + ("Connection: close\r\n" if last else "")
        + "\r\n"
        for path, last in (("/echo/before", False), (f"/download?bytes={size}", False), ("/echo/after", True))
    )

    answers = _responses(_raw(ingress.running.port, requests.encode()))

    assert [status for status, _ in answers] == [200, 200, 200]
    assert hashlib.sha256(answers[1][1]).digest() == hashlib.sha256(PATTERN * (size // len(PATTERN))).digest()
    before, after = (json.loads(body) for _, body in (answers[0], answers[2]))
    assert before["peer"] == after["peer"]  # the app's connection was kept for the next request


def test_a_viewer_gone_mid_body_closes_the_connection_to_the_app(
    make_ingress: Callable[..., Ingress], raw_app: Callable[[Answerer], str]
) -> None:
    app_saw_the_end = threading.Event()

    async def send_until_cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (1 << 40))
        with contextlib.suppress(ConnectionError):
            while True:
                writer.write(PATTERN * 16)
                await writer.drain()
        app_saw_the_end.set()

    ingress = make_ingress(upstream=raw_app(send_until_cut), sandbox_id=SANDBOX)
    with socket.create_connection(("127.0.0.1", ingress.running.port), timeout=10) as viewer:
        viewer.sendall(f"GET / HTTP/1.1\r\nHost: h\r\n{_head_lines()}\r\n".encode())
        received = 0
        while received < 4 * 1024 * 1024:
            received += len(viewer.recv(1 << 20))

    assert app_saw_the_end.wait(GENEROUS_SECONDS)  # not kept half-read, nor for another request


def test_an_app_answering_with_an_endless_head_gets_the_not_responding_page(
    make_ingress: Callable[..., Ingress], raw_app: Callable[[Answerer], str]
) -> None:
    async def endless_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n")
        n = 0
        with contextlib.suppress(ConnectionError):
            while True:  # headers of 100 bytes, never a blank line, until the ingress hangs up
                writer.write(b"X-Filler-%05d: %s\r\n" % (n % 100_000, b"f" * 83))
                await writer.drain()
                n += 1

    ingress = make_ingress(upstream=raw_app(endless_head), sandbox_id=SANDBOX)

    status, body, _ = _get(ingress, "/")

    assert status == 502
    assert b"Sandbox not responding" in body


# ---- keep-alive ---------------------------------------------------------------------------------

KEEPALIVE = 0.5  # the viewer's keep-alive, shortened for these tests (75 s in production)


@pytest.fixture
def short_keepalive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("preview_ingress.viewer.KEEPALIVE_SECONDS", KEEPALIVE)


def test_an_idle_viewer_connection_is_kept_for_the_keepalive_then_closed(
    ingress: Ingress, short_keepalive: None
) -> None:
    viewer = _connection(ingress)
    viewer.request("GET", "/echo/first", headers=cloudfront(assertion()))
    assert viewer.getresponse().read()
    time.sleep(KEEPALIVE / 2)
    viewer.request("GET", "/echo/second", headers=cloudfront(assertion()))  # still open
    answer = viewer.getresponse()
    assert (answer.status, json.loads(answer.read())["path"]) == (200, "/echo/second")

    assert viewer.sock is not None
    viewer.sock.settimeout(GENEROUS_SECONDS)
    assert viewer.sock.recv(1) == b""  # closed by the ingress once idle for the keep-alive
    viewer.close()


def test_an_answer_longer_than_the_keepalive_is_not_cut_and_the_connection_is_kept_after(
    ingress: Ingress, sandbox: Sandbox, short_keepalive: None
) -> None:
    viewer = _connection(ingress)
    viewer.request("GET", "/sse", headers=cloudfront(assertion()))
    events = viewer.getresponse()
    assert events.readline() == b"data: first\n"
    time.sleep(KEEPALIVE * 3)  # busy answering: the keep-alive does not run
    fetched = fetch_release(sandbox)
    assert fetched == 200
    assert events.read() == b"\ndata: second\n\n"

    viewer.request("GET", "/echo/after", headers=cloudfront(assertion()))  # kept a keep-alive again
    answer = viewer.getresponse()
    assert (answer.status, json.loads(answer.read())["path"]) == (200, "/echo/after")
    viewer.close()


def fetch_release(sandbox: Sandbox) -> int:
    """The app sends its second event now."""
    app = http.client.HTTPConnection(sandbox.url.removeprefix("http://"), timeout=10)
    app.request("POST", "/sse/release")
    status = app.getresponse().status
    app.close()
    return status


def test_the_ingress_closes_a_connection_to_the_app_idle_for_its_idle_time_and_reuses_a_fresh_one(
    make_ingress: Callable[..., Ingress], raw_app: Callable[[Answerer], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below the apps' own keep-alive (Node's and uvicorn's 5 s; shortened here), so an app never
    closes a connection the ingress is about to send on."""
    monkeypatch.setattr("preview_ingress.upstream.IDLE_SECONDS", KEEPALIVE)
    closed_by_the_ingress = threading.Event()
    requests_per_connection: list[int] = []

    async def answer_until_closed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests_per_connection.append(0)
        while True:
            try:
                await _read_head(reader)
            except asyncio.IncompleteReadError:  # the ingress closed it
                closed_by_the_ingress.set()
                return
            requests_per_connection[-1] += 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    ingress = make_ingress(upstream=raw_app(answer_until_closed), sandbox_id=SANDBOX)

    answers = [_get(ingress, "/a")[:2], _get(ingress, "/b")[:2]]  # one connection, kept between them
    assert closed_by_the_ingress.wait(GENEROUS_SECONDS)
    answers.append(_get(ingress, "/c")[:2])

    assert answers == [(200, b"ok")] * 3
    assert requests_per_connection == [2, 1]
