"""The hand-written body checks give the documented models' verdicts (the OpenAPI contract)."""

from __future__ import annotations

import json

import pytest
from preview_tokens.control_plane.api_models import MintRequest, RevokeRequest
from preview_tokens.control_plane.mint import MintBody
from preview_tokens.control_plane.token_lifecycle import token_to_revoke
from preview_tokens.errors import (
    InvalidExpiresInError,
    InvalidRequestError,
    InvalidScopeError,
    PreviewError,
)
from pydantic import ValidationError

BODIES = [
    "{}", '{"scope": "read"}', '{"scope": "interact", "expires_in": 1}', '{"expires_in": 86400}',
    '{"expires_in": 0}', '{"expires_in": 86401}', '{"expires_in": -5}', '{"expires_in": "60"}',
    '{"expires_in": 60.5}', '{"expires_in": 60.0}', '{"expires_in": true}', '{"expires_in": null}',
    '{"expires_in": 1e3}', '{"scope": "admin"}', '{"scope": "READ"}', '{"scope": null}', '{"scope": 1}',
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
    "body", ['{"token": "mp_x"}', '{"token": ""}', '{"token": 5}', "{}", '{"token": "mp_x", "hint": 1}']
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
