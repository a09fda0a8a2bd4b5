"""The revocation feed as the ingress sees it: polled in the background, checked per request.

The data plane's :class:`~preview_tokens.control_plane.revocations.RevocationView` holds the
revocations in force; here it is fed by a poll every ``revocation_poll_seconds`` (≤ 5 s) in a
worker thread, so a request never waits on the feed. Its own lazy refresh is switched off (it
reads an empty source on the event loop, which costs nothing): the poll owns the feed, and the
staleness is this module's. Past ``max_revocation_staleness_seconds`` without a successful
poll nothing can be proven live: every request is refused and every stream closed (fail closed).

The same poll reads the renewal links (the table's ``renewals`` feed, when the feed has one):
each one, verified with the origin keys, says a token's session continues under a newer token of
the same sandbox, tenant and scope. :meth:`RevocationWatch.renewed` follows them for a stream at
its token's ``exp``; a link that cannot be read or verified is skipped (the stream ends at ``exp``).
A stream about to end with no link known asks for one more read first (:meth:`RevocationWatch.poll_soon`),
so a renewal made late in a token's life is found whatever the poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable

from preview_origin.verifier import AssertionRejectedError, OriginAssertion
from preview_tokens.control_plane.revocations import (
    OVERLAP_MS,
    RenewalSource,
    Revocation,
    RevocationFeedError,
    RevocationSource,
    RevocationView,
)

RenewalVerifier = Callable[[str], tuple[str, OriginAssertion]]
"""A renewal link -> ``(previous jti, the new token's assertion)``; raises when it is not valid."""

logger = logging.getLogger("preview_ingress")
UNAVAILABLE = "revocations_unavailable"


class _PolledElsewhere:
    """The view's own source: empty, because :class:`RevocationWatch` polls the real feed."""

    def entries_since(self, since_ms: int | None, now: int) -> list[Revocation]:
        return []


class RevocationWatch:
    def __init__(
        self,
        feed: RevocationSource | None,
        poll_seconds: float,
        max_staleness_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        renewal_verifier: RenewalVerifier | None = None,
    ) -> None:
        self._feed = feed
        self._renewal_verifier = renewal_verifier
        self._successors: dict[str, OriginAssertion] = {}
        """Previous jti -> the assertion of the token its session continues under."""
        self._known_links: dict[str, float] = {}
        """Links already verified (or refused) -> when to forget them: each poll reads the last
        :data:`OVERLAP_MS` of the feed again, and a link is verified once."""
        self._poll_seconds = poll_seconds
        self._max_staleness = max_staleness_seconds
        self._clock = clock
        self._wall_clock = wall_clock
        self._view = RevocationView(
            _PolledElsewhere(), refresh_seconds=math.inf, max_staleness_seconds=math.inf, clock=clock
        )
        self._polled_at = -math.inf
        self._wake = asyncio.Event()
        """Set by :meth:`poll_soon`: the poll loop reads the feed again without waiting its interval."""
        self._loaded_until_ms: int | None = None
        self.on_poll: Callable[[], None] = lambda: None
        """Called on the event loop after every successful poll (the ingress re-checks its streams)."""

    def staleness_seconds(self) -> float:
        """Seconds since the last successful poll (0 without a feed; +inf before the first)."""
        if self._feed is None:
            return 0.0
        return self._clock() - self._polled_at

    def why_refused(self, assertion: OriginAssertion) -> str | None:
        """``"revoked"``, :data:`UNAVAILABLE`, or ``None`` when the assertion's token is live."""
        if self._feed is None:
            return None
        if self.staleness_seconds() > self._max_staleness:
            return UNAVAILABLE
        why = self._view.revoked(
            assertion.token_id,
            assertion.sandbox_id,
            assertion.tenant_id,
            assertion.credential_id,
            assertion.issued_at,
        )
        return None if why is None else "revoked"

    def renewed(self, assertion: OriginAssertion, now: float) -> OriginAssertion | None:
        """The latest token ``assertion``'s session continues under, live at ``now``: renewal links
        followed while each names the same sandbox, tenant and scope and a later ``exp``; else ``None``."""
        current, seen = assertion, {assertion.token_id}
        while True:
            successor = self._successors.get(current.token_id)
            if (
                successor is None
                or successor.token_id in seen
                or successor.sandbox_id != current.sandbox_id
                or successor.tenant_id != current.tenant_id
                or successor.scope != current.scope
                or successor.expires_at <= current.expires_at
            ):
                break
            seen.add(successor.token_id)
            current = successor
        return current if current is not assertion and now < current.expires_at else None

    async def poll_forever(self) -> None:
        """Poll every ``poll_seconds`` (or sooner, :meth:`poll_soon`), after a first :meth:`poll_once`
        of the caller's (the ingress's start)."""
        if self._feed is None:
            return
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_seconds)
            self._wake.clear()  # a wish made during the poll below is for a poll after it
            await self.poll_once()

    def poll_soon(self, written_by: float) -> None:
        """Read the feed now, out of turn, unless a poll that started at or after wall time
        ``written_by`` did already: the ingress asks shortly before a stream's ``exp`` when it knows
        no renewal of the stream's token, so a link written up to then is followed whatever the poll
        interval. The poll loop does the read (:meth:`poll_forever`), so polls never overlap."""
        read_from = self._loaded_until_ms  # when the last successful poll read the feed, in ms
        if self._feed is not None and (read_from is None or read_from < written_by * 1000):
            self._wake.set()

    async def poll_once(self) -> None:
        feed = self._feed
        if feed is None:
            return
        wall = self._wall_clock()
        since = None if self._loaded_until_ms is None else self._loaded_until_ms - OVERLAP_MS
        try:
            entries, links, refused = await asyncio.to_thread(self._read, feed, since, int(wall))
        except RevocationFeedError as error:
            logger.warning(json.dumps({"event": "revocation_poll_failed", "error": str(error)[:200]}))
            return
        self._view.apply(entries, int(wall))
        known = dict(self._known_links)
        for link, previous, successor in links:
            known[link] = successor.expires_at
            current = self._successors.get(previous)
            if current is None or successor.expires_at > current.expires_at:
                self._successors[previous] = successor
        known.update((link, wall + 2 * OVERLAP_MS / 1000) for link in refused)
        self._known_links = {link: until for link, until in known.items() if until > wall}  # a new dict:
        # the next poll's worker thread reads it while this thread may replace it
        self._successors = {jti: next_ for jti, next_ in self._successors.items() if next_.expires_at > wall}
        self._loaded_until_ms = int(wall * 1000)
        self._polled_at = self._clock()
        self.on_poll()

    def _read(
        self, feed: RevocationSource, since: int | None, now: int
    ) -> tuple[list[Revocation], list[tuple[str, str, OriginAssertion]], list[str]]:
        """In a worker thread (a link's key may need a JWKS fetch): the revocations (raises on
        failure), and the renewal links not seen before (best effort): ``(link, previous jti,
        new assertion)`` for each verified one, and the refused ones."""
        entries = feed.entries_since(since, now)
        verify = self._renewal_verifier
        if verify is None or not isinstance(feed, RenewalSource):
            return entries, [], []
        try:
            raw_links = feed.renewal_links_since(since, now)
        except RevocationFeedError as error:
            logger.warning(json.dumps({"event": "renewal_poll_failed", "error": str(error)[:200]}))
            return entries, [], []
        known = self._known_links
        links: list[tuple[str, str, OriginAssertion]] = []
        refused: list[str] = []
        for link in raw_links:
            if link in known:
                continue
            try:
                links.append((link, *verify(link)))
            except AssertionRejectedError as rejected:
                refused.append(link)
                logger.warning(json.dumps({"event": "renewal_link_rejected", "reason": rejected.reason}))
        return entries, links, refused
