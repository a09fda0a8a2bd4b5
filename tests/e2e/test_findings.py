"""Findings of the black-box attack on the running local stack, one test per class, over real HTTP.

* pathological JSON bodies get ``400 invalid_request`` from mint, never a 500;
* API Gateway's own answers (no route, wrong method) come in the API's error shape;
* nothing credential-shaped reaches the request log, however it is spelled, and log fields
  are escaped (a control character in ``Host`` cannot forge or colour a log line).

The classes that need a failing dependency or a clock (stalled DynamoDB/KMS, key-store outage,
JWKS lifetime) are shown in integration: tests/integration/test_stalled_dependencies.py and
test_jwks_cache.py.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from tests.e2e.local_stack import LocalStack, Reply, fetch

pytestmark = pytest.mark.e2e

DEEP = 1000


def mint_raw(stack: LocalStack, body: bytes, sandbox_id: str = "") -> Reply:
    return fetch(
        f"{stack.api_url}/api/v1/sandboxes/{sandbox_id or stack.demo['sandbox_id']}/preview-token",
        "POST",
        {"Authorization": f"Bearer {stack.demo['api_key']}", "Content-Type": "application/json"},
        body,
    )


def assert_spec_error(reply: Reply, status: int, code: str) -> dict[str, Any]:
    assert reply.status == status, reply.text
    document: dict[str, Any] = reply.json()
    assert set(document) == {"error", "request_id"}
    assert document["error"]["code"] == code
    assert isinstance(document["error"]["message"], str)
    assert document["error"]["message"]
    assert document["request_id"] == reply.headers["X-Request-Id"]
    return document


# ------------------------------------------------------------------------- pathological JSON


@pytest.mark.parametrize(
    "body",
    [
        b"[" * DEEP + b"]" * DEEP,
        b'{"a": ' * DEEP + b"1" + b"}" * DEEP,
        b'{"scope": ' + b"[" * DEEP + b"]" * DEEP + b"}",
        b'{"expires_in": ' + b"9" * 5000 + b"}",
        b'{"expires_in": NaN}',
        b'{"expires_in": -Infinity}',
        b'{"scope": "read", "scope": "interact"}',
        b'{"expires_in": 60, "expires_in": 86400}',
        b'{"scope": "read"',
        b"\xff\xfe{}",
    ],
    ids=[
        "1000-nested-arrays",
        "1000-nested-objects",
        "deep-value",
        "5000-digit-integer",
        "nan",
        "infinity",
        "duplicate-scope",
        "duplicate-expires-in",
        "truncated",
        "not-utf-8",
    ],
)
def test_pathological_json_is_a_400_invalid_request(stack: LocalStack, body: bytes) -> None:
    assert_spec_error(mint_raw(stack, body), 400, "invalid_request")


def test_a_body_over_16_kib_is_a_413_request_too_large(stack: LocalStack) -> None:
    body = b'{"scope": "read", "padding": "' + b"x" * 20_000 + b'"}'
    assert_spec_error(mint_raw(stack, body), 413, "request_too_large")


def test_a_huge_float_is_not_an_integer_ttl(stack: LocalStack) -> None:
    assert_spec_error(mint_raw(stack, b'{"expires_in": 1e999}'), 422, "invalid_expires_in")


# ------------------------------------------------------------------ gateway's own answers


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/sandboxes/sbx-demo/preview-token"),
        ("DELETE", "/api/v1/openapi.json"),
        ("POST", "/api/v2/sandboxes/sbx-demo/preview-token"),
        ("GET", "/api/v1/nothing-here"),
    ],
    ids=["wrong-method-on-mint", "wrong-method-on-openapi", "unknown-version", "unknown-route"],
)
def test_unknown_routes_and_wrong_methods_answer_in_the_error_shape(
    stack: LocalStack, method: str, path: str
) -> None:
    reply = fetch(f"{stack.api_url}{path}", method)

    assert_spec_error(reply, 404, "not_found")
    assert reply.headers["Cache-Control"] == "no-store"
    assert reply.headers["Content-Type"].startswith("application/json")


# -------------------------------------------------------------------------------- logging


def raw_request(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as connection:
        connection.sendall(request)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_no_spelling_of_a_credential_reaches_the_request_log_and_fields_are_escaped(
    stack: LocalStack,
) -> None:
    minted = stack.mint(stack.demo["api_key"], stack.demo["sandbox_id"], {"scope": "read"}).json()
    token = minted["token"]
    preview = stack.preview_origin(stack.demo["sandbox_id"])
    host = preview.removeprefix("http://")
    encoded_token = "".join(f"%{byte:02X}" for byte in token.encode())

    fetch(f"{preview}/?m%74={token}")
    fetch(f"{preview}/?%6D%74={token}&theme=dark")
    fetch(f"{preview}/?MT={token}", "POST")
    fetch(f"{preview}/{token}/page")
    fetch(f"{preview}/{encoded_token}")
    fetch(f"{preview}/?next={encoded_token}")
    mint_raw(stack, b"{}", sandbox_id=token)
    forged_host = f"{host}\x1b[2J\x07 forged-line"
    raw_request(
        stack.port, f"GET /?mt={token} HTTP/1.1\r\nHost: {forged_host}\r\nConnection: close\r\n\r\n".encode()
    )

    log = stack.stderr_path.read_text(encoding="utf-8")
    lines = [line for line in log.splitlines() if line.startswith("[")]
    signature = token.rsplit(".", 1)[1]
    assert not [line for line in lines if signature in line or encoded_token[-40:] in line]
    assert "\x1b" not in log
    assert "\x07" not in log
    assert any("\\x1b[2J\\x07\\x20forged-line" in line for line in lines)
