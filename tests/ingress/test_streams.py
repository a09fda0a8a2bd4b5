"""Streaming through the ingress: SSE, large bodies both ways, WebSockets, and their end."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import os
from collections.abc import Callable

import aiohttp
import pytest
from aiohttp import WSMsgType

from tests.ingress.conftest import (
    PATTERN,
    SANDBOX,
    TENANT_FA,
    Ingress,
    Sandbox,
    assertion,
    cloudfront,
    renewal_link,
)

GENEROUS_SECONDS = 15.0  # a bound on waiting, never a claim about speed
DOWNLOAD_BYTES = 100 * 1024 * 1024
UPLOAD_BYTES = 20 * 1024 * 1024


def test_server_sent_events_arrive_one_by_one(ingress: Ingress, sandbox: Sandbox) -> None:
    async def go() -> tuple[bytes, bytes]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{ingress.url}/sse", headers=cloudfront(assertion(scope="read"))) as events,
        ):
            assert events.status == 200
            first = await asyncio.wait_for(events.content.readuntil(b"\n\n"), GENEROUS_SECONDS)
            # The app sends the second event only now: the first came through on its own.
            async with session.post(f"{sandbox.url}/sse/release") as released:
                assert released.status == 200
            second = await asyncio.wait_for(events.content.readuntil(b"\n\n"), GENEROUS_SECONDS)
            return first, second

    assert asyncio.run(go()) == (b"data: first\n\n", b"data: second\n\n")


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_a_100_mb_download_arrives_intact(
    make_ingress: Callable[..., Ingress], sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, loop: str
) -> None:
    # The CLI runs on uvloop; where uvloop is not installed the ingress runs on asyncio's loop, and
    # a large body's socket relay waits on either loop's readiness.
    if loop == "asyncio":
        monkeypatch.setattr("preview_ingress.server.new_event_loop", asyncio.new_event_loop)
    ingress = make_ingress(upstream=sandbox.url, sandbox_id=SANDBOX)

    async def go() -> tuple[str, int, str | None]:
        digest = hashlib.sha256()
        received = 0
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"{ingress.url}/download?bytes={DOWNLOAD_BYTES}", headers=cloudfront(assertion(scope="read"))
            ) as response,
        ):
            async for chunk in response.content.iter_chunked(1 << 20):
                digest.update(chunk)
                received += len(chunk)
            return digest.hexdigest(), received, response.headers.get("Content-Length")

    expected = hashlib.sha256()
    for offset in range(0, DOWNLOAD_BYTES, len(PATTERN)):
        expected.update(PATTERN[: min(len(PATTERN), DOWNLOAD_BYTES - offset)])

    assert asyncio.run(go()) == (expected.hexdigest(), DOWNLOAD_BYTES, str(DOWNLOAD_BYTES))


@pytest.mark.parametrize("expect_100_continue", [False, True], ids=["plain", "expect-100-continue"])
def test_a_20_mb_upload_arrives_intact_with_its_content_length(
    ingress: Ingress, sandbox: Sandbox, expect_100_continue: bool
) -> None:
    body = os.urandom(UPLOAD_BYTES)

    async def go() -> dict[str, object]:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{ingress.url}/upload",
                data=io.BytesIO(body),
                headers=cloudfront(assertion()),
                expect100=expect_100_continue,
            ) as response,
        ):
            assert response.status == 200
            answer: dict[str, object] = await response.json()
            return answer

    assert asyncio.run(go()) == {
        "sha256": hashlib.sha256(body).hexdigest(),
        "bytes": UPLOAD_BYTES,
        "content_length": str(UPLOAD_BYTES),
        "transfer_encoding": None,
    }


async def _messages(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[str]:
    received = []
    for _ in range(count):
        message = await asyncio.wait_for(ws.receive(), GENEROUS_SECONDS)
        assert message.type is WSMsgType.TEXT
        received.append(message.data)
    return received


def test_an_interact_websocket_relays_both_ways_with_its_subprotocol(
    ingress: Ingress, sandbox: Sandbox
) -> None:
    async def go() -> tuple[str | None, list[str]]:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(
                f"{ingress.url}/ws", protocols=("vite-hmr",), headers=cloudfront(assertion())
            ) as ws,
        ):
            await ws.send_str("keypress")
            return ws.protocol, await _messages(ws, 2)

    assert asyncio.run(go()) == ("vite-hmr", ["hello from the app", "got keypress"])
    assert sandbox.state.ws_closed.wait(GENEROUS_SECONDS)
    assert sandbox.state.ws_received == ["keypress"]


def test_a_read_websocket_drops_what_the_viewer_sends_while_app_frames_arrive(
    ingress: Ingress, sandbox: Sandbox
) -> None:
    async def go() -> list[str]:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(
                f"{ingress.url}/ws", protocols=("vite-hmr",), headers=cloudfront(assertion(scope="read"))
            ) as ws:
                await ws.send_str("keypress")
                await ws.send_bytes(b"\x00binary input")
                await ws.ping()
                received = await _messages(ws, 1)
                async with session.post(f"{sandbox.url}/ws/push?text=update") as pushed:
                    assert pushed.status == 200
                received += await _messages(ws, 1)
            return received

    assert asyncio.run(go()) == ["hello from the app", "update"]
    # The app's side is over only after everything the ingress relayed reached it: nothing did.
    assert sandbox.state.ws_closed.wait(GENEROUS_SECONDS)
    assert sandbox.state.ws_received == []


async def _closed(ws: aiohttp.ClientWebSocketResponse) -> tuple[WSMsgType, str]:
    while True:
        message = await asyncio.wait_for(ws.receive(), GENEROUS_SECONDS)
        if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING):
            return message.type, str(message.extra or "")


def test_when_the_app_closes_its_websocket_the_viewer_gets_its_close_code(
    ingress: Ingress, sandbox: Sandbox
) -> None:
    async def go() -> int | None:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{ingress.url}/ws", headers=cloudfront(assertion())) as ws,
        ):
            await _messages(ws, 1)
            async with session.post(f"{sandbox.url}/ws/push?close=4001") as pushed:
                assert pushed.status == 200
            await _closed(ws)
            return ws.close_code

    assert asyncio.run(go()) == 4001


def test_an_upgrade_the_app_refuses_gets_its_status_and_frame_ancestors(
    ingress: Ingress, sandbox: Sandbox
) -> None:
    async def go() -> None:
        async with aiohttp.ClientSession() as session:
            await session.ws_connect(f"{ingress.url}/no-socket-here", headers=cloudfront(assertion()))

    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        asyncio.run(go())

    assert refused.value.status == 404
    assert refused.value.headers is not None
    assert refused.value.headers["Content-Security-Policy"] == f"frame-ancestors {TENANT_FA}"


def test_a_revoked_token_loses_its_websocket_and_then_its_http_within_a_poll(
    ingress: Ingress, sandbox: Sandbox
) -> None:
    token = assertion(jti="tok-revoked")

    async def go() -> tuple[tuple[WSMsgType, str], int, str]:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{ingress.url}/ws", headers=cloudfront(token)) as ws:
                await _messages(ws, 1)
                ingress.feed.revoke_token("tok-revoked")
                closed = await _closed(ws)
            async with session.get(f"{ingress.url}/echo", headers=cloudfront(token)) as after:
                return closed, after.status, await after.text()

    closed, status, page = asyncio.run(go())

    assert closed == (WSMsgType.CLOSE, "revoked")
    assert status == 403
    assert "Preview revoked" in page


def test_an_ingress_that_stops_closes_its_websockets_as_going_away(
    ingress: Ingress, sandbox: Sandbox
) -> None:
    """1001, not the 1008 of a session that ended: the viewer's session is fine, another ingress serves it."""

    async def go() -> tuple[int | None, str]:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{ingress.url}/ws", headers=cloudfront(assertion())) as ws,
        ):
            await _messages(ws, 1)
            stopping = asyncio.get_running_loop().run_in_executor(None, ingress.running.stop)
            _, why = await _closed(ws)
            await stopping
            return ws.close_code, why

    assert asyncio.run(go()) == (1001, "shutdown")


def test_a_websocket_is_closed_at_the_assertions_exp(ingress: Ingress, sandbox: Sandbox) -> None:
    async def go() -> tuple[WSMsgType, str]:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{ingress.url}/ws", headers=cloudfront(assertion(expires_in=2))) as ws,
        ):
            await _messages(ws, 1)
            return await _closed(ws)

    assert asyncio.run(go()) == (WSMsgType.CLOSE, "expired")
    assert sandbox.state.ws_closed.wait(GENEROUS_SECONDS)


def test_a_streamed_response_is_cut_at_the_assertions_exp(ingress: Ingress, sandbox: Sandbox) -> None:
    async def go() -> bytes:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{ingress.url}/sse", headers=cloudfront(assertion(expires_in=2))) as events,
        ):
            first = await events.content.readuntil(b"\n\n")
            try:
                rest = await asyncio.wait_for(events.content.read(), GENEROUS_SECONDS)
            except aiohttp.ClientPayloadError:
                rest = b""
            return first + rest

    assert asyncio.run(go()) == b"data: first\n\n"


@pytest.mark.parametrize("end", ["expired", "revoked"])
def test_a_large_download_is_cut_at_the_assertions_exp_or_on_revocation(
    ingress: Ingress, sandbox: Sandbox, caplog: pytest.LogCaptureFixture, end: str
) -> None:
    size, stall_after = 64 * 1024 * 1024, 4 * 1024 * 1024  # the app stops sending after 4 MiB
    token = assertion(expires_in=2 if end == "expired" else 600, jti="tok-large")

    async def go() -> tuple[int, bool]:
        received = 0
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"{ingress.url}/download?bytes={size}&stall_after={stall_after}", headers=cloudfront(token)
            ) as response,
        ):
            try:
                async with asyncio.timeout(GENEROUS_SECONDS):
                    async for chunk in response.content.iter_any():
                        received += len(chunk)
                        if received == stall_after and end == "revoked":
                            ingress.feed.revoke_token("tok-large")
            except aiohttp.ClientPayloadError:
                return received, True
        return received, False

    with caplog.at_level(logging.INFO, logger="preview_ingress"):
        received, cut = asyncio.run(go())

    assert (received, cut) == (stall_after, True)
    line = json.loads(next(r.getMessage() for r in caplog.records if '"/download"' in r.getMessage()))
    assert (line["closed"], line["bytes_out"]) == (end, stall_after)


# --- renewal in place: the session's streams carry on under the new token -----------------------


def _renewed_stream(
    ingress: Ingress, link: str | None, revoke: str | None = None, ends_in: int = 2
) -> tuple[list[str], str]:
    """A WebSocket opened on a token that ends in ``ends_in`` s, ``link`` put in the feed at once
    (and ``revoke`` revoked 1 s after the token's end): what the app pushed then, and why the
    stream then closed."""
    opened_on = assertion(expires_in=ends_in, jti="tok-first")

    async def go() -> tuple[list[str], str]:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{ingress.url}/ws", headers=cloudfront(opened_on)) as ws,
        ):
            received = await _messages(ws, 1)
            if link is not None:
                ingress.feed.renew(link)
            await asyncio.sleep(ends_in + 1)  # past the first token's exp
            if revoke is not None:
                ingress.feed.revoke_token(revoke)
            if not ws.closed:
                await ws.send_str("still here")
            message = await asyncio.wait_for(ws.receive(), GENEROUS_SECONDS)
            if message.type is not WSMsgType.TEXT:  # closed already
                return received, str(message.extra or "")
            return [*received, message.data], (await _closed(ws))[1]

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("poll_seconds", "ends_in"),
    [(0.2, 2), (5.0, 3)],
    # polling every 5 s, the feed is read at the start and then only after the first token's end:
    # the ingress reads it out of turn in the last second before the stream's exp
    ids=["polled-often", "next-poll-after-exp"],
)
def test_a_websocket_renewed_in_place_stays_open_past_its_tokens_exp_until_the_new_ones(
    make_ingress: Callable[..., Ingress], sandbox: Sandbox, poll_seconds: float, ends_in: int
) -> None:
    ingress = make_ingress(upstream=sandbox.url, sandbox_id=SANDBOX, revocation_poll_seconds=poll_seconds)

    received, why = _renewed_stream(
        ingress, renewal_link("tok-first", expires_in=ends_in + 3, jti="tok-second"), ends_in=ends_in
    )

    assert received == ["hello from the app", "got still here"]
    assert sandbox.state.ws_received == ["still here"]
    assert why == "expired"  # at the second token's exp


def test_a_stream_ending_unrenewed_costs_one_read_of_the_feed_out_of_turn(
    make_ingress: Callable[..., Ingress], sandbox: Sandbox
) -> None:
    slow = make_ingress(upstream=sandbox.url, sandbox_id=SANDBOX, revocation_poll_seconds=5.0)
    reads_before = slow.feed.reads

    received, why = _renewed_stream(slow, None, ends_in=3)

    assert (received, why) == (["hello from the app"], "expired")
    assert slow.feed.reads - reads_before == 1  # not one per check in its last second


@pytest.mark.parametrize(
    "link",
    [
        renewal_link("tok-first", scope="read"),
        renewal_link("tok-first", sandbox="sbx-other"),
        renewal_link("tok-first", tenant="globex"),
        renewal_link("tok-other"),
        renewal_link("tok-first", seed=bytes(32)),
        assertion(jti="tok-second"),  # an assertion is not a link
    ],
    ids=[
        "another-scope",
        "another-sandbox",
        "another-tenant",
        "another-session",
        "not-signed-by-us",
        "an-assertion",
    ],
)
def test_a_link_that_does_not_continue_the_streams_session_leaves_it_to_end_at_exp(
    ingress: Ingress, sandbox: Sandbox, link: str
) -> None:
    received, why = _renewed_stream(ingress, link)

    assert received == ["hello from the app"]
    assert why == "expired"
    assert sandbox.state.ws_received == []


@pytest.mark.parametrize("revoked", ["tok-first", "tok-second"])
def test_revoking_either_token_of_a_renewed_session_closes_its_stream(
    ingress: Ingress, sandbox: Sandbox, revoked: str
) -> None:
    _, why = _renewed_stream(
        ingress, renewal_link("tok-first", expires_in=600, jti="tok-second"), revoke=revoked
    )

    assert why == "revoked"
    assert sandbox.state.ws_received in ([], ["still here"])  # the send may beat the next poll
