"""The revocation feed as the ingress sees it: polled in the background, checked per request.

The data plane's :class:`~preview_tokens.control_plane.revocations.RevocationView` holds the
revocations in force; here it is fed by a poll every ``revocation_poll_seconds`` (≤ 5 s) in a
worker thread, so a request never waits on the feed. Its own lazy refresh is switched off (it
reads an empty source on the event loop, which costs nothing): the poll owns the feed, and the
staleness is this module's. Past ``max_revocation_staleness_seconds`` without a successful
poll nothing can be proven live: every request is refused and every stream closed (fail closed).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable

from preview_origin.verifier import OriginAssertion
from preview_tokens.control_plane.revocations import (
    OVERLAP_MS,
    Revocation,
    RevocationFeedError,
    RevocationSource,
    RevocationView,
)

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
    ) -> None:
        self._feed = feed
        self._poll_seconds = poll_seconds
        self._max_staleness = max_staleness_seconds
        self._clock = clock
        self._wall_clock = wall_clock
        self._view = RevocationView(
            _PolledElsewhere(), refresh_seconds=math.inf, max_staleness_seconds=math.inf, clock=clock
        )
        self._polled_at = -math.inf
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

    async def poll_forever(self) -> None:
        if self._feed is None:
            return
        while True:
            await self.poll_once()
            await asyncio.sleep(self._poll_seconds)

    async def poll_once(self) -> None:
        feed = self._feed
        if feed is None:
            return
        wall = self._wall_clock()
        since = None if self._loaded_until_ms is None else self._loaded_until_ms - OVERLAP_MS
        try:
            entries = await asyncio.to_thread(feed.entries_since, since, int(wall))
        except RevocationFeedError as error:
            logger.warning(json.dumps({"event": "revocation_poll_failed", "error": str(error)[:200]}))
            return
        self._view.apply(entries, int(wall))
        self._loaded_until_ms = int(wall * 1000)
        self._polled_at = self._clock()
        self.on_poll()
