"""The ingress's Prometheus metrics, one registry per ingress (several can run in one process).

``prometheus-client`` is the Prometheus project's own client: it writes the text exposition
format exactly (escaping, ``_total`` suffixes, ``# HELP``/``# TYPE``), which is all we need it for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
# No ``*_created`` series: a counter's start time is the process's, which the scrape already knows.
disable_created_metrics()  # type: ignore[no-untyped-call]


class IngressMetrics:
    def __init__(self, staleness: Callable[[], float]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "preview_ingress_requests",
            "Requests answered, by route (http, websocket) and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.denials = Counter(
            "preview_ingress_denials",
            "Requests refused by the ingress, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.streams_opened = Counter(
            "preview_ingress_streams_opened",
            "WebSockets opened to an app",
            registry=self.registry,
        )
        self.streams_renewed = Counter(
            "preview_ingress_streams_renewed",
            "Streams kept open past their token's exp because the session was renewed in place",
            registry=self.registry,
        )
        self.streams_closed = Counter(
            "preview_ingress_streams_closed",
            "Streams closed (WebSockets, bodies cut short), by why: ended, expired, revoked, ...",
            ["why"],
            registry=self.registry,
        )
        staleness_gauge = Gauge(
            "preview_ingress_revocation_feed_staleness_seconds",
            "Seconds since the revocation feed was last read successfully",
            registry=self.registry,
        )
        staleness_gauge.set_function(staleness)
        # One child per (route, status): ``labels()`` validates and locks on every call, so the
        # request path looks its counter up here instead (statuses are three digits: bounded).
        self._request_counters: dict[tuple[str, int], Any] = {}

    def count_request(self, route: str, status: int) -> None:
        counter = self._request_counters.get((route, status))
        if counter is None:
            counter = self.requests.labels(route=route, status=str(status))
            self._request_counters[(route, status)] = counter
        counter.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
