"""The smoke test's pluggable origin check against an ingress's Prometheus /metrics (on loopback)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from preview_tokens.operator.smoke import IngressMetricsCheck, Session, SmokeError


class FakeIngress:
    """Serves ``/metrics`` as preview-ingress does; ``served`` is its 200 count."""

    def __init__(self) -> None:
        self.served = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = (
                    "# TYPE preview_ingress_requests_total counter\n"
                    f'preview_ingress_requests_total{{route="http",status="200"}} {fake.served}.0\n'
                    'preview_ingress_requests_total{route="http",status="403"} 7.0\n'
                ).encode()
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/metrics"


@pytest.fixture
def ingress() -> Iterator[FakeIngress]:
    running = FakeIngress()
    yield running
    running.server.shutdown()
    running.server.server_close()


SESSION = Session("mp_x", "https://sbx-a.sandboxes.example.com/?mt=mp_x")


def test_it_passes_when_the_ingress_served_the_page(ingress: FakeIngress) -> None:
    check = IngressMetricsCheck(ingress.url)
    check.before(SESSION)
    ingress.served += 2  # the page and the status request went through the ingress
    assert check.after(SESSION, "sbx-a") == "the ingress verified and served 2 request(s)"


def test_it_fails_when_the_ingress_served_nothing(ingress: FakeIngress) -> None:
    check = IngressMetricsCheck(ingress.url)
    check.before(SESSION)
    with pytest.raises(SmokeError, match="did not count the smoke test's page"):
        check.after(SESSION, "sbx-a")


def test_it_fails_clearly_when_the_admin_port_does_not_answer(ingress: FakeIngress) -> None:
    check = IngressMetricsCheck(ingress.url.replace("/metrics", "/nope"))
    with pytest.raises(SmokeError, match="answered 404"):
        check.before(SESSION)
