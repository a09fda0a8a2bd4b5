"""The edge's CloudFront Function (template.yaml ``PreviewEdge``, ``edge/preview_edge.js``) run by node.

Parity: every shared vector (``tests/vectors/edge_access.json``) gets the route and reason it
expects, the same ones the Python gate and the function's Python mirror give it
(``tests/unit/test_edge_vectors.py``). Then what each route forwards: the ingress gets no cookie of
ours, the origin assertion in its header, no client-made edge header, and the path and query as
sent; the denial route is ``/__preview/denied`` with the reason; the exchange route takes every
``mt`` off the query into ``x-preview-token`` (the names API Gateway would decode to ``mt``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from preview_local.edge import EDGE_HEADERS, PreviewEdge
from preview_local.http_messages import HttpRequest
from preview_tokens.data_plane.access import NFKC_LOOKALIKES
from preview_tokens.data_plane.edge_store import signing_key_entries, signing_key_entry

from tests.support.cloudfront_function import function_code, node, node_script, run_function, viewer_request
from tests.support.edge_vectors import (
    HOST,
    NOW,
    ORIGIN_COOKIE,
    TOKEN_ID,
    load_vectors,
    origin_assertion,
    token,
)

VECTORS = load_vectors()
CASES: list[dict[str, Any]] = VECTORS["cases"]
KVS = {entry: value for kid, value in VECTORS["keys"].items() for entry in signing_key_entries(kid)}
KEY_ENTRIES_ONLY = {signing_key_entry(kid): value for kid, value in VECTORS["keys"].items()}
"""A store written before the ``hs.`` entries: the function falls back to ``key.<kid>``."""
HEADER_ENTRIES_ONLY = {e: v for e, v in KVS.items() if e not in KEY_ENTRIES_ONLY}
"""Only the ``hs.`` entries: what the function reads first for a token mint signed."""
SESSION = f"__Host-mp_session={token('interact')}; {ORIGIN_COOKIE}"


def edge_function() -> str:
    return function_code("PreviewEdge", {"InputPathPrefix": VECTORS["input_path_prefix"]})


def route(result: dict[str, Any]) -> dict[str, Any]:
    """The route the function chose, the denial reason it sent on, the token id it passed on."""
    token_id = result["headers"].get("x-preview-token-id", {}).get("value")
    if result.get("__origin") == "fleet-ingress":
        return {"route": "ingress", "reason": None, "token_id": token_id}
    if result["uri"] == "/__preview/denied" and "x-preview-denial" in result["headers"]:
        return {
            "route": "denied",
            "reason": result["headers"]["x-preview-denial"]["value"],
            "token_id": token_id,
        }
    return {"route": "exchange", "reason": None, "token_id": token_id}


def run(events: list[dict[str, Any]], tmp_path: Path, kvs: dict[str, str] = KVS) -> list[dict[str, Any]]:
    return run_function(edge_function(), events, kvs, NOW, tmp_path)


def vector_events() -> list[dict[str, Any]]:
    return [
        viewer_request(r["method"], r["host"], r["path"], r["cookie"], r["headers"], raw_query=r["query"])
        for r in (c["request"] for c in CASES)
    ]


@pytest.fixture(scope="module")
def vector_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return run(vector_events(), tmp_path_factory.mktemp("node"))


@pytest.mark.parametrize(("index", "vector"), list(enumerate(CASES)), ids=[c["name"] for c in CASES])
def test_the_edge_function_routes_every_vector_as_expected(
    vector_results: list[dict[str, Any]], index: int, vector: dict[str, Any]
) -> None:
    assert route(vector_results[index]) == {
        "route": vector["expect"]["route"],
        "reason": vector["expect"]["reason"],
        "token_id": vector["expect"]["token_id"],
    }


def test_with_a_store_from_before_the_header_entries_every_vector_routes_the_same(tmp_path: Path) -> None:
    results = run(vector_events(), tmp_path, KEY_ENTRIES_ONLY)

    assert [route(result) for result in results] == [
        {key: case["expect"][key] for key in ("route", "reason", "token_id")} for case in CASES
    ]


def test_a_token_mint_signed_is_verified_from_its_header_entry_alone(tmp_path: Path) -> None:
    """Its header is the one ``hs.`` names: the function reads the key without decoding it."""
    events = [
        viewer_request("GET", HOST, "/", SESSION, raw_query=""),
        viewer_request("POST", HOST, "/api", SESSION, raw_query=""),
    ]

    results = run(events, tmp_path, HEADER_ENTRIES_ONLY)

    assert [route(result) for result in results] == [
        {"route": "ingress", "reason": None, "token_id": TOKEN_ID}
    ] * 2


def test_a_denial_goes_to_the_denial_page_with_nothing_of_the_request_but_its_method(
    vector_results: list[dict[str, Any]],
) -> None:
    denied = [(c, r) for c, r in zip(CASES, vector_results, strict=True) if c["expect"]["route"] == "denied"]

    assert {c["expect"]["reason"] for c, _ in denied} == {
        "no_token", "expired", "invalid_token", "wrong_sandbox", "read_only"
    }  # fmt: skip
    for case, result in denied:
        assert result["uri"] == "/__preview/denied"
        assert result["querystring"] == {}
        assert result["method"] == case["request"]["method"], "a CloudFront Function cannot change the method"
        assert "__origin" not in result, "the default origin: the REST API"


def test_an_allowed_request_reaches_the_ingress_as_sent_minus_our_credentials(tmp_path: Path) -> None:
    event = viewer_request(
        "POST",
        HOST,
        "/@vite/client",
        f"theme=dark; {SESSION}; __HOST-MP_other=x; __Host-mp_session_ends={NOW + 600}",
        headers={
            "Upgrade": "websocket",
            "Sec-WebSocket-Protocol": "vite-hmr",
            "X-Preview-Assertion": "forged",
            "X-Preview-Token-Id": "another-token",
            "X-Preview-Ingress-Secret": "guessed",
            "X-Sandbox-Id": "sbx-other",
        },
        raw_query="a=%40b&c",
    )

    (result,) = run([event], tmp_path)

    assert result["__origin"] == "fleet-ingress"
    assert result["uri"] == "/@vite/client"
    assert result["querystring"] == {"a": {"value": "%40b"}, "c": {"value": ""}}, "the query is not rewritten"
    assert result["cookies"] == {"theme": {"value": "dark"}}
    headers = {name: value["value"] for name, value in result["headers"].items()}
    assert headers["x-preview-assertion"] == ORIGIN_COOKIE.partition("=")[2]
    assert headers["x-preview-token-id"] == TOKEN_ID, "the verified session's, not the viewer's"
    assert "x-preview-ingress-secret" not in headers, "CloudFront adds the real one as an origin header"
    assert "x-sandbox-id" not in headers
    assert headers["upgrade"] == "websocket"
    assert headers["sec-websocket-protocol"] == "vite-hmr"


def test_a_denial_with_a_proven_sandbox_names_it(tmp_path: Path) -> None:
    event = viewer_request("GET", HOST, "/", f"__Host-mp_session={token(exp=NOW - 1)}; {ORIGIN_COOKIE}")

    (result,) = run([dict(event, request=dict(event["request"], rawQuery=None))], tmp_path)

    assert result["headers"]["x-preview-denial"] == {"value": "expired"}
    assert result["headers"]["x-preview-denial-sandbox"] == {"value": "sbx-a"}


@pytest.mark.parametrize(
    ("uri", "cookie"), [("/app.js", SESSION), ("/app.js", ""), ("/__preview/denied", "")]
)
def test_no_header_the_edge_sets_comes_from_the_viewer(uri: str, cookie: str, tmp_path: Path) -> None:
    """Every one of the mirror's ``EDGE_HEADERS``, sent by the viewer: allowed, denied and reserved."""
    forged = {name: "forged" for name in EDGE_HEADERS}
    event = viewer_request("GET", HOST, uri, cookie, headers=forged, raw_query="")

    (result,) = run([event], tmp_path)

    assert [n for n in EDGE_HEADERS if result["headers"].get(n) == {"value": "forged"}] == []


def test_a_client_cannot_send_its_own_denial_reason(tmp_path: Path) -> None:
    forged = {"X-Preview-Denial": "<b>", "X-Preview-Denial-Sandbox": "x"}
    event = viewer_request("GET", HOST, "/__preview/denied", headers=forged, raw_query="")

    (result,) = run([event], tmp_path)

    assert "x-preview-denial" not in result["headers"]
    assert "x-preview-denial-sandbox" not in result["headers"]


def test_an_origin_assertion_of_another_token_goes_on_with_the_sessions_token_id(tmp_path: Path) -> None:
    """The edge does not read the assertion: the ingress refuses it, as its jti is not this token id."""
    other = origin_assertion(jti="another-token")
    event = viewer_request(
        "GET", HOST, "/", f"__Host-mp_session={token()}; __Host-mp_origin={other}", raw_query=""
    )

    (result,) = run([event], tmp_path)

    assert route(result) == {"route": "ingress", "reason": None, "token_id": TOKEN_ID}
    assert result["headers"]["x-preview-assertion"] == {"value": other}


def test_without_the_raw_query_the_function_fails_closed(tmp_path: Path) -> None:
    (result,) = run([viewer_request("GET", HOST, "/", SESSION)], tmp_path)

    assert result == {"statusCode": 503, "statusDescription": "Service Unavailable"}


def test_the_functions_lookalike_table_is_the_python_gates(tmp_path: Path) -> None:
    script = tmp_path / "fold.js"
    script.write_text(
        node_script(edge_function()).split("(async () =>")[0] + "process.stdout.write(JSON.stringify(FOLD));",
        encoding="utf-8",
    )
    import subprocess

    completed = subprocess.run([node(), str(script)], input="{}", capture_output=True, text=True, check=True)

    assert json.loads(completed.stdout) == NFKC_LOOKALIKES


# ------------------------------------------------------------------- ?mt=: the exchange route


@dataclass(frozen=True)
class MtCase:
    """A request with ``mt`` (method, path, raw query, own X-Preview-Token) and what the edge makes of it."""

    method: str
    path: str
    query: str
    path_after: str
    query_after: str
    token_header: str | None
    client_token_header: str | None = None

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}?{self.query}" + (" +header" if self.client_token_header else "")


# Names are decoded as API Gateway decodes a query (form decoding, once): m%74, %6D%74, %6d%74 are mt.
MT_CASES = [
    # GET with a token: the exchange, mt off the query, the value in X-Preview-Token
    MtCase("GET", "/", "mt=T", "/__preview/exchange", "", "T"),
    MtCase("GET", "/", "lang=en&mt=T", "/__preview/exchange", "lang=en", "T"),
    MtCase("GET", "/app/index.html", "mt=T&lang=en", "/__preview/exchange/app/index.html", "lang=en", "T"),
    MtCase("GET", "/app/", "mt=T", "/__preview/exchange/app/", "", "T"),
    MtCase("GET", "/", "%6D%74=T&a=1", "/__preview/exchange", "a=1", "T"),
    MtCase("GET", "/", "%6d%74=T", "/__preview/exchange", "", "T"),
    MtCase("GET", "/", "mt=", "/__preview/exchange", "", None),
    MtCase("GET", "/", "mt", "/__preview/exchange", "", None),
    MtCase("GET", "/__preview/exchange", "mt=T", "/__preview/exchange", "", "T"),
    MtCase(
        "GET", "/__preview/exchange/app/index.html", "mt=T", "/__preview/exchange/app/index.html", "", "T"
    ),
    # every other method: same stripping, no rewrite (the REST API has no such route: its 404)
    MtCase("HEAD", "/", "mt=T", "/", "", "T"),
    MtCase("POST", "/api/save", "mt=T&x=1", "/api/save", "x=1", "T"),
    MtCase("PUT", "/api/save", "x=1&m%74=T", "/api/save", "x=1", "T"),
    MtCase("DELETE", "/api", "%6d%74=T&%6D%74=T", "/api", "", "invalid"),
    # several mt values, or one a header cannot carry as it is: "invalid", which never verifies
    MtCase("POST", "/", "mt=A&mt=B", "/", "", "invalid"),
    MtCase("POST", "/", "mt=&mt=T", "/", "", "invalid"),
    MtCase("POST", "/", "mt=T%2C", "/", "", "invalid"),
    MtCase("POST", "/", "mt=a+b", "/", "", "invalid"),
    MtCase("POST", "/", "mt=T%0D%0AX-Sandbox-Id:%20x", "/", "", "invalid"),
    MtCase("POST", "/", "mt=%E2%9C%93", "/", "", "invalid"),
    # the value is decoded as API Gateway would have decoded it for the exchange
    MtCase("POST", "/", "mt=mp_a%2Eb", "/", "", "mp_a.b"),
    # other parameters stay byte for byte
    MtCase("POST", "/", "a=1&&mt=T&b=%20+x&c", "/", "a=1&&b=%20+x&c", "T"),
    # the client's own X-Preview-Token never passes the edge
    MtCase("GET", "/", "mt=T", "/__preview/exchange", "", "T", client_token_header="mp_forged"),
]
NOT_MT = ["MT=T", "mtx=1&xmt=2", "m%2574=T", "mt+=T&+mt=T&mt%20=T", "m%74%=T"]


@pytest.fixture(scope="module")
def mt_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    events = []
    for case in MT_CASES:
        headers = {"X-Preview-Token": case.client_token_header} if case.client_token_header else {}
        events.append(viewer_request(case.method, HOST, case.path, headers=headers, raw_query=case.query))
    return run(events, tmp_path_factory.mktemp("mt"))


@pytest.mark.parametrize(("index", "case"), list(enumerate(MT_CASES)), ids=[c.id for c in MT_CASES])
def test_mt_goes_to_the_exchange_off_the_query_into_the_token_header(
    mt_results: list[dict[str, Any]], index: int, case: MtCase
) -> None:
    result = mt_results[index]
    token_header = result["headers"].get("x-preview-token")

    assert "__origin" not in result, "the REST API"
    assert result["uri"] == case.path_after
    assert result["querystring"] == case.query_after
    assert (token_header or {}).get("value") == case.token_header


@pytest.mark.parametrize("case", MT_CASES, ids=[c.id for c in MT_CASES])
def test_the_python_mirror_sends_mt_to_the_exchange_exactly_as_the_function_does(case: MtCase) -> None:
    headers = [("Host", HOST)]
    if case.client_token_header is not None:
        headers.append(("X-Preview-Token", case.client_token_header))
    edge = PreviewEdge(KVS.get, VECTORS["input_path_prefix"], clock=lambda: float(NOW))

    decision = edge.decide(HttpRequest(case.method, case.path, case.query, tuple(headers)))

    assert decision.route == "exchange"
    assert decision.request.path == case.path_after
    assert decision.request.query == case.query_after
    assert [v for n, v in decision.request.headers if n.lower() == "x-preview-token"] == (
        [case.token_header] if case.token_header is not None else []
    )


@pytest.mark.parametrize("query", NOT_MT)
def test_other_names_are_not_mt_and_stay_byte_for_byte(tmp_path: Path, query: str) -> None:
    (result,) = run([viewer_request("GET", HOST, "/app", SESSION, raw_query=query)], tmp_path)

    assert result["__origin"] == "fleet-ingress"
    assert "x-preview-token" not in result["headers"]
    assert result["querystring"] == {
        name: {"value": value} for name, _, value in (p.partition("=") for p in query.split("&") if p)
    }
