"""What an operator sees: one JSON log line per request or stream without credentials, /healthz, /metrics."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from preview_ingress import compiled
from preview_ingress.access_log import encode, write_request
from preview_ingress.log_handler import FLUSH_SECONDS, MAX_BUFFERED_LINES, LoopBatchedHandler
from preview_origin.verifier import HttpJwks, OriginAssertionVerifier
from preview_tokens.data_plane.origin_assertion import PublishedOriginKey, origin_jwks, public_key_of

from tests.ingress.conftest import (
    AUDIENCE,
    KID,
    SANDBOX,
    SECRET,
    SEED,
    Ingress,
    Sandbox,
    assertion,
    cloudfront,
)
from tests.ingress.test_admission import fetch


def test_one_log_line_per_request_with_the_request_id_and_no_credential(
    ingress: Ingress, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    token = assertion(scope="read")
    with caplog.at_level(logging.INFO, logger="preview_ingress"):
        fetch("GET", f"{ingress.url}/echo?q=1", cloudfront(token, **{"X-Amz-Cf-Id": "cf-req-1"}))
        fetch("POST", f"{ingress.url}/echo", cloudfront(token, **{"X-Amz-Cf-Id": "cf-req-2"}), data=b"x")
        fetch("GET", f"{ingress.url}/echo", cloudfront(token, secret="wrong-secret-wrong-secret"))

    lines = [json.loads(record.getMessage()) for record in caplog.records if record.name == "preview_ingress"]
    assert [(line["request_id"], line["status"]) for line in lines] == [
        ("cf-req-1", 200),
        ("cf-req-2", 403),
        (None, 403),
    ]
    assert lines[0]["path"] == "/echo"
    assert (lines[0]["sandbox"], lines[0]["scope"]) == ("sbx-one", "read")
    assert (lines[1]["denied"], lines[2]["denied"]) == ("read_only", "secret")
    # a refusal after the assertion verified names its session; one before it cannot
    assert (lines[1]["sandbox"], lines[1]["token_id"]) == ("sbx-one", lines[0]["token_id"])
    assert "token_id" not in lines[2]
    logged = caplog.text
    assert SECRET not in logged
    assert token not in logged
    assert token.rsplit(".", 1)[1] not in logged


def test_metrics_count_requests_denials_and_streams(ingress: Ingress, sandbox: Sandbox) -> None:
    fetch("GET", f"{ingress.url}/echo", cloudfront(assertion()))
    fetch("GET", f"{ingress.url}/echo", cloudfront(assertion()))
    fetch("GET", f"{ingress.url}/echo", cloudfront(None))
    fetch("GET", f"{ingress.url}/echo", cloudfront(assertion(), secret=None))

    async def open_and_close_a_websocket() -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{ingress.url}/ws", headers=cloudfront(assertion())) as ws,
        ):
            await ws.receive()

    asyncio.run(open_and_close_a_websocket())
    closed = 'preview_ingress_streams_closed_total{why="ended"}'
    deadline = time.monotonic() + 15  # the ingress counts the stream once both sides are closed
    metrics = fetch("GET", f"{ingress.admin}/metrics")
    while closed not in metrics.text and time.monotonic() < deadline:
        metrics = fetch("GET", f"{ingress.admin}/metrics")

    assert metrics.status == 200
    assert metrics.headers["Content-Type"].startswith("text/plain")
    samples = _samples(metrics.text)
    assert samples['preview_ingress_requests_total{route="http",status="200"}'] == 2.0
    assert samples['preview_ingress_requests_total{route="http",status="403"}'] == 2.0
    assert samples['preview_ingress_denials_total{reason="assertion_missing"}'] == 1.0
    assert samples['preview_ingress_denials_total{reason="secret"}'] == 1.0
    assert samples["preview_ingress_streams_opened_total"] == 1.0
    assert samples['preview_ingress_streams_closed_total{why="ended"}'] == 1.0
    assert 0 <= samples["preview_ingress_revocation_feed_staleness_seconds"] < 10
    assert samples["preview_ingress_compiled"] == (1.0 if compiled() else 0.0)


def _samples(text: str) -> dict[str, float]:
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_healthz_is_ok_while_the_revocation_feed_is_fresh(ingress: Ingress) -> None:
    health = fetch("GET", f"{ingress.admin}/healthz")

    assert health.status == 200
    assert health.json()["status"] == "ok"


def test_healthz_is_503_while_the_origin_keys_cannot_be_fetched(
    make_ingress: Callable[..., Ingress], sandbox: Sandbox
) -> None:
    """Every assertion would be refused (503): a load balancer must stop sending this instance traffic."""
    unreachable = OriginAssertionVerifier(
        HttpJwks("http://127.0.0.1:9/origin-keys", timeout_seconds=1), AUDIENCE
    )
    ingress = make_ingress(upstream=sandbox.url, sandbox_id="sbx-one", verifier=unreachable)

    health = fetch("GET", f"{ingress.admin}/healthz")

    assert health.status == 503
    assert health.json()["status"] == "origin_keys_unavailable"
    assert health.json()["origin_keys_available"] is False
    assert fetch("GET", f"{ingress.url}/echo", cloudfront(assertion())).status == 503


class FailingFeed:
    def entries_since(self, since_ms: int | None, now: int) -> list[object]:
        from preview_tokens.control_plane.revocations import RevocationFeedError

        raise RevocationFeedError("AccessDenied")


def test_without_a_readable_revocation_feed_everything_is_refused_and_unhealthy(
    make_ingress: Callable[..., Ingress], sandbox: Sandbox
) -> None:
    ingress = make_ingress(upstream=sandbox.url, sandbox_id="sbx-one", revocation_feed=FailingFeed())

    answer = fetch("GET", f"{ingress.url}/echo", cloudfront(assertion()))

    assert answer.status == 503
    assert "Preview unavailable" in answer.text
    assert fetch("GET", f"{ingress.admin}/healthz").status == 503
    assert sandbox.state.requests == []


class _Recorded(io.StringIO):
    """A stream that records each write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


@pytest.fixture
def batched() -> Iterator[tuple[_Recorded, LoopBatchedHandler, logging.Logger]]:
    """A logger of its own whose one handler is a :class:`LoopBatchedHandler` on a recorded stream."""
    stream = _Recorded()
    handler = LoopBatchedHandler(stream)
    log = logging.getLogger("preview_ingress.test_batched")
    log.addHandler(handler)
    log.propagate = False
    yield stream, handler, log
    log.removeHandler(handler)


def test_the_access_log_writes_a_turn_of_the_loop_at_once_and_in_order(
    batched: tuple[_Recorded, LoopBatchedHandler, logging.Logger],
) -> None:
    stream, _, log = batched

    async def three_requests_in_one_turn() -> list[str]:
        for number in (1, 2, 3):
            log.warning("request %d", number)
        written_before_the_turn_ends = list(stream.writes)
        await asyncio.sleep(0)  # the loop turns
        await asyncio.sleep(0)
        return written_before_the_turn_ends

    assert asyncio.run(three_requests_in_one_turn()) == []
    assert stream.writes == ["request 1\nrequest 2\nrequest 3\n"]

    log.warning("no loop running")  # another thread, or before and after the loop: at once
    assert stream.writes[-1] == "no loop running\n"


@pytest.mark.parametrize(
    "line",
    [
        {"event": "request", "method": "GET", "path": '/a b/\u00e9"\\\n', "request_id": None},
        {"duration_ms": 0.1, "status": 200, "bytes_out": 13, "renewals": 2, "denied": "read_only"},
        {"ok": True, "no": False, "big": 10**20, "tiny": 1e-7, "nan": float("nan"), "list": [1, "x"]},
        {"nested": {"a": [None, 1.5]}, "\u2603": "\ud83d\ude00"},
    ],
)
def test_a_line_is_the_compact_json_of_json_dumps(line: dict[str, object]) -> None:
    assert encode(line) == json.dumps(line, separators=(",", ":"))


@pytest.mark.parametrize(
    ("request_id", "duration_ms", "fields"),
    [
        (None, 0.4, {"sandbox": "sbx-a", "scope": "read", "token_id": "t1", "bytes_out": 13, "status": 200}),
        ("Cf-Id==\u00e9", 1234.5, {"status": 403, "denied": "read_only"}),
        (None, 0.0, {}),
        ("x", 2.0, {"closed": "expired", "renewals": 2, "to_app": 0, "dropped": None}),
        ("x", 2.0, {"ok": True, "ratio": 0.5, "nested": {"a": [1]}}),  # not a request's: the encoder's
        ("x", float("nan"), {'path"quoted': "a\\b\n\u2603"}),
    ],
)
def test_a_request_line_is_the_compact_json_of_json_dumps(
    request_id: str | None, duration_ms: float, fields: dict[str, object]
) -> None:
    lines: list[str] = []
    path = '/p\u00e4th/"quoted"\\?q'
    write_request("request", "GET", path, request_id, duration_ms, fields, lines.append)
    line = {"event": "request", "method": "GET", "path": path, "request_id": request_id}
    assert lines == [json.dumps({**line, "duration_ms": duration_ms, **fields}, separators=(",", ":"))]


def test_a_value_json_cannot_hold_fails_the_line_as_json_dumps_does() -> None:
    with pytest.raises(TypeError):
        encode({"value": object()})


def test_access_lines_wait_a_moment_and_go_together_a_record_or_a_full_buffer_at_once(
    batched: tuple[_Recorded, LoopBatchedHandler, logging.Logger],
) -> None:
    stream, handler, log = batched

    async def lines() -> dict[str, list[str]]:
        seen: dict[str, list[str]] = {}
        handler.write_line("request 1")
        handler.write_line("request 2")
        for _ in range(3):
            await asyncio.sleep(0)  # turns of the loop: access lines still wait
        seen["a few turns later"] = list(stream.writes)
        await asyncio.sleep(FLUSH_SECONDS * 5)  # a bound on waiting, not a claim about speed
        seen["after the flush time"] = list(stream.writes)
        handler.write_line("request 3")
        log.warning("a record")  # takes the access line before it along, at the end of the turn
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        seen["after a record"] = list(stream.writes)
        for number in range(MAX_BUFFERED_LINES):
            handler.write_line(f"burst {number}")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        seen["after a full buffer"] = list(stream.writes)
        return seen

    seen = asyncio.run(lines())

    assert seen["a few turns later"] == []
    assert seen["after the flush time"] == ["request 1\nrequest 2\n"]
    assert seen["after a record"][1:] == ["request 3\na record\n"]
    burst = "".join(f"burst {number}\n" for number in range(MAX_BUFFERED_LINES))
    assert seen["after a full buffer"][2:] == [burst]


def test_a_line_logged_as_the_loop_stops_is_written_at_exit() -> None:
    program = """
import asyncio, logging, sys
from preview_ingress.log_handler import log_to
log_to(sys.stdout)
loop = asyncio.new_event_loop()
def last_request():
    logging.getLogger("preview_ingress").info("the last line")
    loop.stop()  # before the turn that would write it
loop.call_soon(last_request)
loop.run_forever()
loop.close()
"""
    ran = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=30, check=True
    )

    assert ran.stdout == "the last line\n"
    assert ran.stderr == ""


def raw_answer(port: int, request: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request.encode("latin-1"))
        return connection.makefile("rb").readline()


def test_the_command_logs_each_request_on_stderr_between_listening_and_stopped(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    keys = tmp_path / "origin-keys.json"
    keys.write_text(json.dumps(origin_jwks([PublishedOriginKey(KID, public_key_of(SEED))])))
    command = [
        sys.executable, "-m", "preview_ingress.cli", "--upstream", sandbox.url, "--sandbox", SANDBOX,
        "--jwks-file", str(keys), "--audience", AUDIENCE, "--no-revocations",
        "--host", "127.0.0.1", "--port", "0", "--admin-port", "0",
    ]  # fmt: skip
    environment = {**os.environ, "PREVIEW_INGRESS_SECRET": SECRET}
    with subprocess.Popen(command, env=environment, stderr=subprocess.PIPE, text=True) as process:
        assert process.stderr is not None
        listening = json.loads(process.stderr.readline())
        token = assertion(scope="read")
        url = f"http://127.0.0.1:{listening['port']}"
        answers = [
            fetch("GET", f"{url}/echo?q=1", cloudfront(token, **{"X-Amz-Cf-Id": f"cf-cli-{n}"})).status
            for n in range(3)
        ]
        refused = fetch("GET", f"{url}/echo", cloudfront(token, secret="wrong-secret-wrong-secret"))
        headers = "".join(f"{name}: {value}\r\n" for name, value in cloudfront(token).items())
        malformed = raw_answer(
            listening["port"],
            f"POST /echo HTTP/1.1\r\nHost: x\r\n{headers}Transfer-Encoding: xchunked\r\n\r\n"
            "viewer-body-bytes",
        )
        process.send_signal(signal.SIGTERM)
        rest = process.stderr.read()

    # "compiled": which form runs (the wheel's mypyc modules under make test, the source under make ingress)
    assert (listening["event"], listening["compiled"]) == ("listening", compiled())
    assert (answers, refused.status) == ([200, 200, 200], 403)
    assert malformed.startswith(b"HTTP/1.0 400")
    lines = [json.loads(line) for line in rest.splitlines()]  # every line one JSON object
    assert [(line["event"], line.get("request_id"), line.get("status")) for line in lines] == [
        ("request", "cf-cli-0", 200),
        ("request", "cf-cli-1", 200),
        ("request", "cf-cli-2", 200),
        ("request", None, 403),
        ("library_log", None, None),  # aiohttp's "Error handling request": its type, not its traceback
        ("stopped", None, None),
    ]
    assert lines[4]["error_type"] == "BadHttpMessage"
    assert "viewer-body-bytes" not in rest
    assert SECRET not in rest
    assert token.rsplit(".", 1)[1] not in rest
