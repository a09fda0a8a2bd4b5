"""The stream edge's CloudFront Function (template.yaml ``PreviewStreamVerifier``) run by node.

Parity: every shared vector (``tests/vectors/edge_access.json``) gets the decision the Python gate
gives it (``tests/unit/test_edge_vectors.py``). Then what an allowed upgrade is forwarded with: no
cookie of ours, no ``mt``, no client-made trusted header, the origin assertion only when it belongs
to the verified token.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.cloudfront_function import function_code, run_function, viewer_request
from tests.support.edge_vectors import HOST, KEYS, LIVE_KID, NOW, b64, load_vectors, token

VECTORS = load_vectors()
CASES: list[dict[str, Any]] = VECTORS["cases"]
KVS = {f"key.{kid}": value for kid, value in VECTORS["keys"].items()}


def stream_function() -> str:
    return function_code("PreviewStreamVerifier", {"InputPathPrefix": VECTORS["input_path_prefix"]})


def decision(result: dict[str, Any]) -> dict[str, Any]:
    if "statusCode" in result:
        return {"allowed": False, "reason": result["headers"]["x-preview-denial"]["value"]}
    return {"allowed": True, "reason": None}


@pytest.fixture(scope="module")
def vector_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    events = [
        viewer_request(r["method"], r["host"], r["path"], r["cookie"], r["headers"])
        for r in (c["request"] for c in CASES)
    ]
    return run_function(stream_function(), events, KVS, VECTORS["now"], tmp_path_factory.mktemp("node"))


@pytest.mark.parametrize(("index", "vector"), list(enumerate(CASES)), ids=[c["name"] for c in CASES])
def test_the_stream_edge_function_decides_every_vector_as_expected(
    vector_results: list[dict[str, Any]], index: int, vector: dict[str, Any]
) -> None:
    assert decision(vector_results[index]) == vector["expect"]


def test_denials_never_reach_the_origin_and_say_why(vector_results: list[dict[str, Any]]) -> None:
    statuses = {
        c["expect"]["reason"]: r["statusCode"]
        for c, r in zip(CASES, vector_results, strict=True)
        if "statusCode" in r
    }
    assert statuses == {
        "no_token": 401,
        "expired": 401,
        "invalid_token": 403,
        "wrong_sandbox": 403,
        "read_only": 403,
    }
    assert all(
        r["headers"]["cache-control"]["value"] == "no-store" for r in vector_results if "statusCode" in r
    )


def assertion_for(claims: dict[str, Any]) -> str:
    """An origin assertion as the exchange sets it (only its payload matters to the edge)."""
    header = b64(json.dumps({"alg": "EdDSA", "kid": "a1", "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(claims).encode())}.{b64(b'signature')}"


def forwarded(tmp_path: Path, cookie: str, **kwargs: Any) -> dict[str, Any]:
    event = viewer_request("GET", HOST, "/websockify", cookie, **kwargs)
    kvs = {f"key.{LIVE_KID}": base64.urlsafe_b64encode(KEYS[LIVE_KID]).decode().rstrip("=")}
    (result,) = run_function(stream_function(), [event], kvs, NOW, tmp_path)
    return result


def test_an_allowed_upgrade_is_forwarded_without_our_cookies_mt_or_client_made_trusted_headers(
    tmp_path: Path,
) -> None:
    session = token("interact")
    result = forwarded(
        tmp_path,
        f"theme=dark; __Host-mp_session={session}; __Host-mp_session_ends={NOW + 600}",
        headers={
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "X-Sandbox-Id": "sbx-other",
            "X-Preview-Scope": "interact",
            "X-Preview-Assertion": "forged",
        },
        querystring={"mt": session, "m%74": session, "resize": "scale"},
    )

    assert "statusCode" not in result
    assert result["cookies"] == {"theme": {"value": "dark"}}
    assert result["querystring"] == {"resize": {"value": "scale"}}
    headers = {name: value["value"] for name, value in result["headers"].items()}
    assert headers["x-sandbox-id"] == "sbx-a"
    assert headers["x-preview-scope"] == "interact"
    assert headers["x-preview-expires"] == str(NOW + 600)
    assert "x-preview-assertion" not in headers, "no assertion cookie: nothing to forward, never the client's"
    assert headers["sec-websocket-key"] == "dGhlIHNhbXBsZSBub25jZQ=="


def test_the_origin_assertion_cookie_of_the_verified_token_is_forwarded_as_a_header(tmp_path: Path) -> None:
    session = token("read")
    assertion = assertion_for({"sub": "sbx-a", "jti": "jti-vector", "scope": "read", "exp": NOW + 600})

    result = forwarded(tmp_path, f"__Host-mp_session={session}; __Host-mp_origin={assertion}")

    assert result["headers"]["x-preview-assertion"] == {"value": assertion}
    assert result["cookies"] == {}


@pytest.mark.parametrize(
    "claims", [{"sub": "sbx-a", "jti": "another-token"}, {"sub": "sbx-b", "jti": "jti-vector"}, {}]
)
def test_an_origin_assertion_of_another_token_is_refused(tmp_path: Path, claims: dict[str, Any]) -> None:
    result = forwarded(
        tmp_path, f"__Host-mp_session={token('read')}; __Host-mp_origin={assertion_for(claims)}"
    )

    assert result["statusCode"] == 403
    assert result["headers"]["x-preview-denial"] == {"value": "invalid_token"}


def test_the_stream_edge_function_stays_within_its_size_limit() -> None:
    assert len(stream_function().encode()) < 10 * 1024
