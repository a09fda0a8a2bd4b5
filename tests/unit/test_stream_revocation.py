"""Revocation reaches streams: the origin refuses a revoked token's upgrade and ends its open streams.

The real origin, relay, assertion signer/verifier and revocation view; the feed is a fake (no
network) and the relay runs over a local socket pair. Nothing is timed: the relay is asked to
re-check often, and the test waits for what it did.
"""

from __future__ import annotations

import base64
import os
import socket
import threading
from dataclasses import dataclass, field

import pytest
from preview_local.http_messages import HttpRequest, HttpResponse
from preview_local.origin import SandboxOrigin, StreamRevocations
from preview_local.streams import StreamRelay
from preview_origin import OriginAssertion, OriginAssertionVerifier, StaticJwks
from preview_tokens.control_plane.revocations import (
    Revocation,
    RevocationFeedError,
    RevocationKind,
    RevocationView,
    not_before_marker,
)
from preview_tokens.data_plane.origin_assertion import (
    PublishedOriginKey,
    origin_jwks,
    public_key_of,
    sign_origin_assertion,
)
from preview_tokens.keys.tokens import PreviewClaims, Scope

NOW = 1_800_000_000
AUDIENCE = "https://fleet.example.com"
SEED = bytes(range(32))
SANDBOX = "sbx-a"
WAIT_SECONDS = 30  # only how long a broken relay may hang the test, never what is asserted


@dataclass
class FakeFeed:
    entries: list[Revocation] = field(default_factory=list)
    failing: bool = False

    def entries_since(self, since_ms: int | None, now: int) -> list[Revocation]:
        if self.failing:
            raise RevocationFeedError("ConnectionError")
        return [entry for entry in self.entries if since_ms is None or entry.recorded_at_ms > since_ms]


@dataclass
class Clock:
    now: float = NOW

    def __call__(self) -> float:
        return self.now


def claims(
    jti: str = "j1", sandbox: str = SANDBOX, tenant: str = "acme", credential: str = "key_1"
) -> PreviewClaims:
    return PreviewClaims(
        sandbox, tenant, f"{sandbox}.example.com", Scope.INTERACT, NOW - 10, NOW + 600, jti, credential
    )


def another_tenants_token() -> PreviewClaims:
    return claims("j2", "sbx-b", "globex", "key_2")


class WatchedRevocations(StreamRevocations):
    """The real check, and a record of its answers per token, for the test to wait on."""

    def __init__(self, view: RevocationView) -> None:
        super().__init__(view)
        self.answers: dict[str, list[str | None]] = {}
        self.changed = threading.Condition()

    def why_ended(self, assertion: OriginAssertion) -> str | None:
        why = super().why_ended(assertion)
        with self.changed:
            self.answers.setdefault(assertion.token_id, []).append(why)
            self.changed.notify_all()
        return why

    def wait_for_answers(self, jti: str, count: int) -> list[str | None]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.answers.get(jti, [])) >= count, WAIT_SECONDS)
            return list(self.answers[jti])


def upgrade_request(token: PreviewClaims, path: str = "/input/stream") -> HttpRequest:
    assertion = sign_origin_assertion(token, AUDIENCE, "oa1", SEED)
    return HttpRequest(
        "GET",
        path,
        "",
        (
            ("Host", "origin.internal"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", base64.b64encode(os.urandom(16)).decode()),
            ("Sec-WebSocket-Version", "13"),
            ("X-Sandbox-Id", token.sandbox_id),
            ("X-Preview-Assertion", assertion),
        ),
    )


@dataclass
class Fleet:
    feed: FakeFeed
    clock: Clock
    origin: SandboxOrigin
    revocations: WatchedRevocations

    def revoke(self, entry: Revocation) -> None:
        self.feed.entries.append(entry)
        self.clock.now += 2  # past the view's refresh interval: the next question reads the feed


def fleet(staleness: float = 10.0) -> Fleet:
    feed, clock = FakeFeed(), Clock()
    view = RevocationView(
        feed, refresh_seconds=2.0, max_staleness_seconds=staleness, clock=clock, wall_clock=clock
    )
    jwks = StaticJwks(origin_jwks([PublishedOriginKey("oa1", public_key_of(SEED))]))
    verifier = OriginAssertionVerifier(jwks, AUDIENCE, clock=clock)
    revocations = WatchedRevocations(view)
    origin = SandboxOrigin("/input", verifier, revocations=revocations, stream_check_seconds=0.01)
    return Fleet(feed, clock, origin, revocations)


def token_revoked(jti: str, at: float) -> Revocation:
    return Revocation(RevocationKind.TOKEN, jti, NOW + 600, int(at * 1000))


class RunningStream:
    """A relay taken over by a thread, its client end held by the test."""

    def __init__(self, relay: StreamRelay) -> None:
        self.client, server_side = socket.socketpair()
        self.client.settimeout(WAIT_SECONDS)
        self.ended: list[str] = []

        def serve() -> None:
            with server_side:  # as the HTTP server closes the connection after the relay
                self.ended.append(relay.run(server_side))

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        self.greeting = self.client.recv(4096)

    def is_open(self) -> bool:
        return self._thread.is_alive()

    def wait_until_ended(self) -> str:
        self._thread.join(WAIT_SECONDS)
        assert not self._thread.is_alive(), "the relay kept the stream open"
        return self.ended[0]

    def close(self) -> None:
        self.client.close()

    def received_until_eof(self) -> bytes:
        received = b""
        while chunk := self.client.recv(4096):
            received += chunk
        return received


def opened(origin: SandboxOrigin, token: PreviewClaims) -> RunningStream:
    relay = origin.respond(upgrade_request(token))
    assert isinstance(relay, StreamRelay), relay
    return RunningStream(relay)


def test_a_live_tokens_stream_opens() -> None:
    stream = opened(fleet().origin, claims())

    assert b"101 Switching Protocols" in stream.greeting
    stream.close()
    assert stream.wait_until_ended() == "closed"


@pytest.mark.parametrize(
    "entry",
    [
        token_revoked("j1", NOW - 5),
        not_before_marker(RevocationKind.SANDBOX, SANDBOX, NOW - 5),
        not_before_marker(RevocationKind.TENANT, "acme", NOW - 5),
        not_before_marker(RevocationKind.CREDENTIAL, "key_1", NOW - 5),
    ],
    ids=["token", "sandbox", "tenant", "credential"],
)
def test_a_revoked_tokens_upgrade_is_refused_before_anything_is_relayed(entry: Revocation) -> None:
    revoked = fleet()
    revoked.feed.entries.append(entry)

    answer = revoked.origin.respond(upgrade_request(claims()))

    assert isinstance(answer, HttpResponse)
    assert answer.status == 403
    assert b"token revoked" in answer.body
    assert revoked.origin.observations(SANDBOX).streams_opened == []


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        (token_revoked("j1", NOW + 1), "token revoked"),
        (not_before_marker(RevocationKind.SANDBOX, SANDBOX, NOW + 1), "sandbox revoked"),
        (not_before_marker(RevocationKind.TENANT, "acme", NOW + 1), "tenant revoked"),
        (not_before_marker(RevocationKind.CREDENTIAL, "key_1", NOW + 1), "credential revoked"),
    ],
    ids=["token", "sandbox", "tenant", "credential"],
)
def test_an_open_stream_is_closed_when_its_token_is_revoked(entry: Revocation, why: str) -> None:
    running = fleet()
    stream = opened(running.origin, claims())
    other = opened(running.origin, another_tenants_token())

    running.revoke(entry)

    assert stream.wait_until_ended() == f"token revoked ({why})"
    assert stream.received_until_eof() == b""  # the server closed the socket
    stream.close()
    # Another tenant's stream is checked again after the revocation, and stays open.
    checked = len(running.revocations.wait_for_answers("j2", 1))
    assert running.revocations.wait_for_answers("j2", checked + 2)[-1] is None
    assert other.is_open()
    other.close()
    assert other.wait_until_ended() == "closed"


def test_streams_are_refused_and_ended_when_revocations_cannot_be_known() -> None:
    stale = fleet(staleness=5.0)
    stream = opened(stale.origin, claims())

    stale.feed.failing = True
    stale.clock.now += 6

    assert stream.wait_until_ended() == "revocations unavailable"
    stream.close()
    answer = stale.origin.respond(upgrade_request(claims("j3")))
    assert isinstance(answer, HttpResponse)
    assert (answer.status, answer.header("Retry-After")) == (503, "5")


def test_the_relay_ends_at_exp_without_a_revocation_check() -> None:
    ours, theirs = socket.socketpair()
    relay = StreamRelay(connect=lambda: ours, deadline=0)
    stream = RunningStream(relay)

    assert stream.wait_until_ended() == "token expired"
    stream.close()
    theirs.close()
