"""The smoke test's pieces that need no stack: reading the ingress's /metrics, the table, the verdict."""

from __future__ import annotations

import json
from pathlib import Path

from preview_tokens.operator.smoke import (
    CheckResult,
    IngressMetricsCheck,
    Reply,
    SandboxStatusCheck,
    prometheus_total,
    summary,
    table,
    target_from_demo,
)

METRICS = """\
# HELP preview_ingress_requests_total Requests answered, by route (http, websocket) and status
# TYPE preview_ingress_requests_total counter
preview_ingress_requests_total{route="http",status="200"} 3.0
preview_ingress_requests_total{route="websocket",status="101"} 1.0
preview_ingress_requests_total{route="http",status="403"} 2.0
preview_ingress_requests_created{route="http",status="200"} 1.7e+09
preview_ingress_denials_total{reason="bad_secret"} 2.0
"""


def test_the_ingress_requests_it_served_are_summed_by_status() -> None:
    def served(labels: dict[str, str]) -> bool:
        return labels.get("status", "").startswith("2")

    assert prometheus_total(METRICS, "preview_ingress_requests_total", served) == 3.0
    assert prometheus_total(METRICS, "preview_ingress_requests_total", lambda _: True) == 6.0
    assert prometheus_total(METRICS, "preview_ingress_denials_total", lambda _: True) == 2.0


def test_the_verdict_names_the_first_failed_check() -> None:
    results = [
        CheckResult("mint", "ok", "interact token"),
        CheckResult("page", "FAILED", "the page answered 502: Sandbox not responding"),
        CheckResult("websocket", "skipped", "nothing to check against (see --help)"),
        CheckResult("denial page", "FAILED", "no CSP"),
        CheckResult("cleanup", "ok", "the smoke test's token is revoked"),
    ]
    assert summary(results) == (1, "smoke: FAILED: page: the page answered 502: Sandbox not responding")
    lines = table(results).splitlines()
    assert lines[0].split() == ["check", "result", "detail"]
    assert lines[2].startswith("page         FAILED   the page answered 502")


def test_a_pass_counts_the_checks_and_names_what_was_skipped() -> None:
    results = [CheckResult("mint", "ok", ""), CheckResult("websocket", "skipped", "")]
    assert summary(results) == (0, "smoke: passed, 1 checks (websocket skipped)")


def test_a_refusal_is_summed_up_in_one_line() -> None:
    page = b"<!doctype html><html><body><main><h1>Sandbox not\n responding</h1><p>long text</p></main>"
    assert Reply(502, [], page).error_code() == "Sandbox not responding"
    denied = Reply(403, [("X-Preview-Denial", "expired")], b"<h1>Preview session expired</h1>")
    assert denied.error_code() == "expired (Preview session expired)"
    assert Reply(503, [], b'{"error": {"code": "unavailable"}}').error_code() == "unavailable"


def demo_file(tmp_path: Path, **extra: object) -> Path:
    demo = {
        "api_url": "http://127.0.0.1:3000",
        "api_key": "msk_demo",
        "sandbox_id": "sbx-demo",
        "preview_domain": "sandboxes.localhost",
        **extra,
    }
    path = tmp_path / "demo.json"
    path.write_text(json.dumps(demo), encoding="utf-8")
    return path


def test_the_local_stacks_origin_check_is_its_ingress_when_demo_json_names_one(tmp_path: Path) -> None:
    plain = target_from_demo(demo_file(tmp_path), None)
    assert isinstance(plain.origin_check, SandboxStatusCheck)
    assert plain.websocket_path == "/input/stream"

    ports = target_from_demo(demo_file(tmp_path, ingress_admin_ports={"sbx-demo": 9123}), None)
    assert isinstance(ports.origin_check, IngressMetricsCheck)
    assert ports.origin_check.metrics_url == "http://127.0.0.1:9123/metrics"

    other = target_from_demo(demo_file(tmp_path, ingress_admin_ports={"sbx-demo": 9123}), "sbx-other")
    assert isinstance(other.origin_check, SandboxStatusCheck)
    assert other.sandbox_id == "sbx-other"
