"""The hand-written body checks give the documented models' verdicts (the OpenAPI contract)."""

from __future__ import annotations

import json

import pytest
from preview_tokens.control_plane.api_models import MintRequest, RevokeRequest
from preview_tokens.control_plane.mint import MintBody
from preview_tokens.control_plane.request_body import MAX_BODY_BYTES, require_no_body
from preview_tokens.control_plane.token_lifecycle import token_to_revoke
from preview_tokens.errors import (
    InvalidExpiresInError,
    InvalidRequestError,
    InvalidScopeError,
    PreviewError,
    RequestTooLargeError,
    UnsupportedMediaTypeError,
)
from pydantic import ValidationError

BODIES = [
    "{}", '{"scope": "read"}', '{"scope": "interact", "expires_in": 1}', '{"expires_in": 86400}',
    '{"expires_in": 0}', '{"expires_in": 86401}', '{"expires_in": -5}', '{"expires_in": "60"}',
    '{"expires_in": 60.5}', '{"expires_in": 60.0}', '{"expires_in": true}', '{"expires_in": null}',
    '{"expires_in": 1e3}', '{"expires_in": 609.0}', '{"expires_in": 86400.0}', '{"expires_in": 86401.0}',
    '{"expires_in": 0.0}', '{"expires_in": 609.5}',
    '{"scope": "admin"}', '{"scope": "READ"}', '{"scope": null}', '{"scope": 1}',
    '{"scope": ["read"]}', '{"scope": "read", "tenant_id": "x"}', '{"sandbox": 1}',
    '{"scope": "admin", "expires_in": 0}',
]  # fmt: skip


def model_verdict(body: str) -> type[PreviewError] | MintRequest:
    try:
        return MintRequest.model_validate(json.loads(body))
    except ValidationError as error:
        fields = {str(detail["loc"][0]) for detail in error.errors() if detail["loc"]}
        if fields - {"expires_in", "scope"}:
            return InvalidRequestError
        return InvalidScopeError if "scope" in fields else InvalidExpiresInError


@pytest.mark.parametrize("body", BODIES)
def test_the_mint_body_check_agrees_with_the_documented_model(body: str) -> None:
    expected = model_verdict(body)
    if isinstance(expected, MintRequest):
        parsed = MintBody.from_body(body)
        assert (parsed.expires_in, parsed.scope) == (expected.expires_in, expected.scope)
    else:
        with pytest.raises(expected):
            MintBody.from_body(body)


@pytest.mark.parametrize(
    "body",
    [
        '{"token": "mp_x"}',
        '{"token": ""}',
        '{"token": 5}',
        "{}",
        '{"token": "mp_x", "hint": 1}',
        "[]",
        '"mp_x"',
    ],
)
def test_the_revoke_body_check_agrees_with_the_documented_model(body: str) -> None:
    try:
        expected: str | None = RevokeRequest.model_validate(json.loads(body)).token
    except ValidationError:
        expected = None
    if expected is None:
        with pytest.raises(InvalidRequestError):
            token_to_revoke(body)
    else:
        assert token_to_revoke(body) == expected


def test_an_integral_float_ttl_is_the_integer_the_schema_says_it_is() -> None:
    # JSON Schema counts 609.0 as an integer; the published schema says integer, and so does the code
    assert MintBody.from_body('{"expires_in": 609.0}').expires_in == 609
    schema = MintRequest.model_json_schema()["properties"]["expires_in"]
    assert (schema["type"], schema["minimum"], schema["maximum"]) == ("integer", 1, 86400)
    with pytest.raises(InvalidExpiresInError):
        MintBody.from_body('{"expires_in": 609.5}')


@pytest.mark.parametrize(
    ("body", "content_type", "error"),
    [
        ("[" * 5000 + "]" * 5000, None, InvalidRequestError),
        ('{"token": ' + "[" * 5000 + "]" * 5000 + "}", None, InvalidRequestError),
        ('{"token": "mp_a", "token": "mp_b"}', None, InvalidRequestError),
        ('{"token": "mp_a", "admin": true}', None, InvalidRequestError),
        ('{"token": NaN}', None, InvalidRequestError),
        ('{"token": "' + "a" * (1024 * 1024) + '"}', None, RequestTooLargeError),
        ('{"token": "mp_a"}', "text/plain", UnsupportedMediaTypeError),
        ('{"token": "mp_a"}', "application/x-www-form-urlencoded", UnsupportedMediaTypeError),
        ('{"token": "mp_a"}', "application/json; charset=latin-1", UnsupportedMediaTypeError),
    ],
)
def test_the_revocation_reads_its_body_with_the_mints_strict_parser(
    body: str, content_type: str | None, error: type[PreviewError]
) -> None:
    with pytest.raises(error):
        token_to_revoke(body, content_type)
    with pytest.raises(error):
        MintBody.from_body(body.replace('"token"', '"scope"'), content_type)


def test_json_with_a_utf8_charset_is_json() -> None:
    assert token_to_revoke('{"token": "mp_a"}', "application/json; charset=UTF-8") == "mp_a"
    assert MintBody.from_body('{"scope": "interact"}', "Application/JSON").scope == "interact"


def test_an_operation_without_a_body_refuses_one() -> None:
    require_no_body(None)
    require_no_body("")
    with pytest.raises(InvalidRequestError):
        require_no_body("{}")
    with pytest.raises(RequestTooLargeError):
        require_no_body("x" * (MAX_BODY_BYTES + 1))
