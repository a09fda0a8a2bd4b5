"""The data plane's revocation view, with a fake feed and a fake clock (no network)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from preview_tokens.control_plane.revocations import (
    OVERLAP_MS,
    Revocation,
    RevocationFeedError,
    RevocationKind,
    RevocationsUnavailableError,
    RevocationView,
    TokenRevokedError,
    not_before_marker,
)
from preview_tokens.keys.tokens import MAX_TTL_SECONDS, PreviewClaims, Scope

NOW = 1_800_000_000


@dataclass
class FakeFeed:
    entries: list[Revocation] = field(default_factory=list)
    failing: bool = False
    asked: list[int | None] = field(default_factory=list)

    def entries_since(self, since_ms: int | None, now: int) -> list[Revocation]:
        self.asked.append(since_ms)
        if self.failing:
            raise RevocationFeedError("ConnectionError")
        return [entry for entry in self.entries if since_ms is None or entry.recorded_at_ms > since_ms]


@dataclass
class Clock:
    now: float = NOW

    def __call__(self) -> float:
        return self.now


def claims(
    jti: str = "j1", sandbox: str = "sbx-a", tenant: str = "t1", cid: str = "key_1", iat: int = NOW - 10
) -> PreviewClaims:
    return PreviewClaims(sandbox, tenant, f"{sandbox}.example.com", Scope.READ, iat, iat + 600, jti, cid)


def view(feed: FakeFeed, clock: Clock, staleness: float = 10.0) -> RevocationView:
    return RevocationView(
        feed, refresh_seconds=2.0, max_staleness_seconds=staleness, clock=clock, wall_clock=clock
    )


def token_entry(jti: str, exp: int, at: float) -> Revocation:
    return Revocation(RevocationKind.TOKEN, jti, exp, int(at * 1000))


def test_a_revoked_jti_is_refused_and_others_pass() -> None:
    feed, clock = FakeFeed([token_entry("j1", NOW + 600, NOW - 5)]), Clock()
    revocations = view(feed, clock)
    with pytest.raises(TokenRevokedError):
        revocations.check(claims("j1"))
    revocations.check(claims("j2"))


@pytest.mark.parametrize(
    ("kind", "subject", "field_name"),
    [
        (RevocationKind.SANDBOX, "sbx-a", "sandbox"),
        (RevocationKind.TENANT, "t1", "tenant"),
        (RevocationKind.CREDENTIAL, "key_1", "cid"),
    ],
)
def test_a_marker_refuses_tokens_issued_before_it_and_not_after(
    kind: RevocationKind, subject: str, field_name: str
) -> None:
    marker = not_before_marker(kind, subject, NOW - 0.5)
    assert marker.value == NOW  # every token of the revoking second, and before it
    revocations = view(FakeFeed([marker]), Clock())
    with pytest.raises(TokenRevokedError):
        revocations.check(claims(iat=NOW - 1))
    revocations.check(claims(iat=NOW))  # minted after: its iat is at least the marker
    revocations.check(claims(**{field_name: "someone-else"}, iat=NOW - 1))


def test_the_feed_is_read_at_most_every_refresh_interval_and_incrementally() -> None:
    feed, clock = FakeFeed(), Clock()
    revocations = view(feed, clock)
    for _ in range(100):
        revocations.check(claims())
    assert feed.asked == [None]  # one full load, then no read within the interval

    feed.entries.append(token_entry("j1", NOW + 600, NOW + 1))
    clock.now += 1.9
    revocations.check(claims("j1"))  # still within the interval: not yet known
    clock.now += 0.1
    with pytest.raises(TokenRevokedError):
        revocations.check(claims("j1"))
    assert feed.asked == [None, NOW * 1000 - OVERLAP_MS]


def test_no_read_happens_while_no_request_flows() -> None:
    feed, clock = FakeFeed(), Clock()
    revocations = view(feed, clock)
    revocations.check(claims())
    clock.now += 3600
    assert feed.asked == [None]


def test_entries_die_with_the_tokens_they_can_match() -> None:
    feed, clock = FakeFeed(), Clock()
    feed.entries = [
        token_entry("j1", NOW + 5, NOW),
        not_before_marker(RevocationKind.SANDBOX, "sbx-a", NOW),
    ]
    revocations = view(feed, clock)
    revocations.check(claims("j9", sandbox="sbx-z"))
    assert len(revocations) == 2
    clock.now += 10
    revocations.check(claims("j9", sandbox="sbx-z"))
    assert len(revocations) == 1  # the token expired: its jti entry is gone
    clock.now += MAX_TTL_SECONDS
    revocations.check(claims("j9", sandbox="sbx-z"))
    assert len(revocations) == 0  # no token older than the marker can still be alive


def test_unreadable_feed_is_tolerated_until_the_staleness_then_fails_closed_then_recovers() -> None:
    feed, clock = FakeFeed(), Clock()
    revocations = view(feed, clock, staleness=10)
    revocations.check(claims())
    feed.failing = True
    clock.now += 9
    revocations.check(claims())
    clock.now += 2
    with pytest.raises(RevocationsUnavailableError):
        revocations.check(claims())
    feed.failing = False
    clock.now += 2
    revocations.check(claims())


def test_a_cold_container_that_cannot_read_the_feed_fails_closed_at_once() -> None:
    revocations = view(FakeFeed(failing=True), Clock())
    with pytest.raises(RevocationsUnavailableError):
        revocations.check(claims())


def test_edge_store_keys_follow_contract_4() -> None:
    assert token_entry("abc", NOW, NOW).edge_key == "rv.abc"
    assert not_before_marker(RevocationKind.SANDBOX, "sbx-a", NOW).edge_key == "rs.sbx-a"
    assert not_before_marker(RevocationKind.TENANT, "t1", NOW).edge_key == "rt.t1"
    assert not_before_marker(RevocationKind.CREDENTIAL, "key_1", NOW).edge_key == "rc.key_1"


def test_each_refresh_attempt_reports_how_stale_the_view_is() -> None:
    """What the RevocationViewStaleness metric shows: 0 after a refresh, growing while the feed fails."""
    feed, clock = FakeFeed(), Clock()
    reported: list[float] = []
    revocations = RevocationView(
        feed,
        refresh_seconds=2.0,
        max_staleness_seconds=10.0,
        clock=clock,
        wall_clock=clock,
        on_staleness=reported.append,
    )
    revocations.check(claims())
    feed.failing = True
    clock.now += 3
    revocations.check(claims())
    clock.now += 3
    revocations.check(claims())

    assert reported == [0.0, 3.0, 6.0]
    assert revocations.staleness_seconds() == 6.0
