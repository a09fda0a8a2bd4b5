"""The shared access-rule vectors through the local stack's mirror of the edge.

The same file runs through the edge's CloudFront Function ``PreviewEdge`` in node
(``tests/integration/test_preview_edge_function.py``) and through its Python mirror, the local
stack's :class:`preview_local.edge.PreviewEdge` (here): one rule set, every verifier.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from preview_local.edge import PreviewEdge
from preview_local.http_messages import HttpRequest

from tests.support.edge_vectors import (
    HOST,
    ORIGIN_COOKIE,
    TOKEN_ID,
    VECTORS_PATH,
    build_vectors,
    load_vectors,
    render,
    token,
)

VECTORS = load_vectors()
EVERY_CASE: list[dict[str, Any]] = VECTORS["cases"]
CASES = [c for c in EVERY_CASE if not c.get("edge_only")]
"""The access-rule cases (every verifier); the others are the edge's routing alone."""


def test_the_vector_file_is_what_its_generator_writes() -> None:
    assert VECTORS_PATH.read_text(encoding="utf-8") == render(build_vectors()), (
        "regenerate: .venv/bin/python -m tests.support.edge_vectors"
    )


def test_there_are_enough_vectors_of_every_class() -> None:
    names = [c["name"] for c in CASES]
    assert len(CASES) >= 50
    for kind in ("alg confusion", "kid:", "host:", "expiry:", "read ", "interact ", "non-canonical",
                 "read lookalike", "X-HTTP-Method-Override"):  # fmt: skip
        assert any(kind in name for name in names), kind
    assert {c["expect"]["reason"] for c in CASES} >= {
        None,
        "no_token",
        "invalid_token",
        "expired",
        "wrong_sandbox",
        "read_only",
    }


def test_every_route_and_the_origin_assertion_rule_have_vectors() -> None:
    routes = {c["expect"]["route"] for c in EVERY_CASE}
    assert routes == {"exchange", "denied", "ingress"}
    edge_only = [c for c in EVERY_CASE if c.get("edge_only")]
    assert any("origin assertion" in c["name"] for c in edge_only)
    assert all(c["expect"]["route"] == ("ingress" if c["expect"]["allowed"] else "denied") for c in CASES)


def mirror_request(request: Mapping[str, Any]) -> HttpRequest:
    headers = [("Host", request["host"]), *request["headers"].items()]
    if request["cookie"]:
        headers.append(("Cookie", request["cookie"]))
    return HttpRequest(request["method"], request["path"], request["query"], tuple(headers))


@pytest.mark.parametrize("vector", EVERY_CASE, ids=[c["name"] for c in EVERY_CASE])
def test_the_python_mirror_of_the_edge_function_routes_every_vector_as_expected(
    vector: dict[str, Any],
) -> None:
    kvs = {f"key.{kid}": value for kid, value in VECTORS["keys"].items()}
    edge = PreviewEdge(kvs.get, VECTORS["input_path_prefix"], clock=lambda: float(VECTORS["now"]))

    decision = edge.decide(mirror_request(vector["request"]))

    token_ids = [v for n, v in decision.request.headers if n.lower() == "x-preview-token-id"]
    assert {"route": decision.route, "reason": decision.reason, "token_id": token_ids} == {
        "route": vector["expect"]["route"],
        "reason": vector["expect"]["reason"],
        "token_id": [vector["expect"]["token_id"]] if vector["expect"]["token_id"] else [],
    }


def test_the_mirror_forwards_an_allowed_request_as_sent_minus_our_credentials() -> None:
    kvs = {f"key.{kid}": value for kid, value in VECTORS["keys"].items()}
    edge = PreviewEdge(kvs.get, VECTORS["input_path_prefix"], clock=lambda: float(VECTORS["now"]))
    session = f"__Host-mp_session={token('interact')}; {ORIGIN_COOKIE}; __HOST-MP_x=1"
    sent = HttpRequest(
        "POST",
        "/@vite/client",
        "a=%40b&c",
        (
            ("Host", HOST),
            ("Cookie", f"theme=dark; {session}"),
            ("X-Preview-Assertion", "forged"),
            ("X-Preview-Token-Id", "another-token"),
        ),
    )

    decision = edge.decide(sent)

    assert decision.route == "ingress"
    assert (decision.request.method, decision.request.path, decision.request.query) == (
        "POST", "/@vite/client", "a=%40b&c"
    )  # fmt: skip
    assert decision.request.header("Cookie") == "theme=dark"
    assert [v for n, v in decision.request.headers if n.lower() == "x-preview-assertion"] == [
        ORIGIN_COOKIE.partition("=")[2]
    ]
    assert [v for n, v in decision.request.headers if n.lower() == "x-preview-token-id"] == [TOKEN_ID]
    assert decision.claims is not None
    assert decision.claims.sandbox_id == "sbx-a"


def test_the_mirror_sends_a_refusal_to_the_denial_page_with_its_reason_only() -> None:
    edge = PreviewEdge(lambda key: None, VECTORS["input_path_prefix"], clock=lambda: float(VECTORS["now"]))
    sent = HttpRequest("PUT", "/api/x", "q=1", (("Host", HOST), ("X-Preview-Denial", "forged")))

    decision = edge.decide(sent)

    assert (decision.route, decision.reason) == ("denied", "no_token")
    assert (decision.request.method, decision.request.path, decision.request.query) == (
        "PUT", "/__preview/denied", ""
    )  # fmt: skip
    assert [v for n, v in decision.request.headers if n.lower() == "x-preview-denial"] == ["no_token"]
