"""The ingress's Prometheus metrics, one registry per ingress (several can run in one process).

``prometheus-client`` is the Prometheus project's own client: it writes the text exposition
format exactly (escaping, ``_total`` suffixes, ``# HELP``/``# TYPE``), which is all we need it for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, Metric

from preview_ingress.build import compiled

CONTENT_TYPE = CONTENT_TYPE_LATEST
# No ``*_created`` series: a counter's start time is the process's, which the scrape already knows.
disable_created_metrics()  # type: ignore[no-untyped-call]


class IngressMetrics:
    def __init__(self, staleness: Callable[[], float]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = _RequestCounts()
        self.registry.register(self._requests)
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
        compiled_gauge = Gauge(
            "preview_ingress_compiled",
            "1 when the per-request modules run compiled by mypyc, 0 when pure Python (no C compiler)",
            registry=self.registry,
        )
        compiled_gauge.set(1 if compiled() else 0)

    def count_request(self, route: str, status: int) -> None:
        counts = self._requests.counts
        key = (route, status)
        counts[key] = counts.get(key, 0) + 1

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _RequestCounts:
    """``preview_ingress_requests_total``, counted in plain integers and read at scrape time.

    A ``Counter`` child's ``inc()`` is three Python calls and a lock, on every request; this is a
    dictionary update (compiled by mypyc in the wheel). The requests are counted on the ingress's
    loop, and ``/metrics`` is served on the same loop, so a scrape never sees half an update."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, int], int] = {}

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for (route, status), count in sorted(self.counts.items()):
            family.add_metric([route, str(status)], count)
        yield family

    @staticmethod
    def _family() -> CounterMetricFamily:
        return CounterMetricFamily(
            "preview_ingress_requests",
            "Requests answered, by route (http, websocket) and status",
            labels=["route", "status"],
        )
