"""The control-plane API's bodies as pydantic models: the OpenAPI document is generated from them.

Only ``build_openapi`` (the ``GET /api/v1/openapi.json`` route and ``make openapi``) imports this
module: the request path validates by hand (:class:`preview_tokens.control_plane.mint.MintBody`,
:func:`preview_tokens.control_plane.token_lifecycle.token_to_revoke`) so that a mint's cold start never
imports pydantic; unit tests hold the hand-written checks to these models' verdicts.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from preview_tokens.control_plane.mint import DEFAULT_TTL_SECONDS, whole_number
from preview_tokens.keys.tokens import MAX_TTL_SECONDS


class MintRequest(BaseModel):
    """Request body of ``POST /api/v1/sandboxes/{id}/preview-token``; every field optional."""

    model_config = ConfigDict(extra="forbid", strict=True)

    # JSON Schema's integer: 609.0 is one (a number with a zero fractional part), as the code reads it.
    expires_in: Annotated[
        int,
        Field(ge=1, le=MAX_TTL_SECONDS, description="Token TTL in seconds (a whole number; 60.0 is 60)"),
        BeforeValidator(lambda value: whole_number(value) if type(value) is float else value),
    ] = DEFAULT_TTL_SECONDS
    scope: Annotated[Literal["read", "interact"], Field(description="read: view only; interact: input")] = (
        "read"
    )


class MintResponse(BaseModel):
    token: Annotated[str, Field(description="Signed preview token (mp_<base64url>); opaque")]
    url: Annotated[str, Field(description="Iframe-ready URL with the token as the ?mt= parameter")]
    expires_at: Annotated[str, Field(description="Expiry, UTC ISO 8601 with a Z suffix")]
    scope: Literal["read", "interact"]
    id: Annotated[str, Field(description="The token's id (jti): what the list of live previews shows")]


class ErrorDetail(BaseModel):
    code: Annotated[str, Field(description="Machine code, e.g. invalid_scope")]
    message: Annotated[str, Field(description="Human sentence")]
    retryable: Annotated[bool | None, Field(description="true on 429 and 503")] = None
    retry_after_ms: Annotated[int | None, Field(description="429 and 503: Retry-After in ms")] = None


class ErrorResponse(BaseModel):
    """Every error body has this one shape."""

    error: ErrorDetail
    request_id: Annotated[str, Field(description="The request's id, also in X-Request-Id")]


class RevokeRequest(BaseModel):
    """Body of ``POST /api/v1/preview-tokens/revoke``: only ``token`` (any other field is a 400)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    token: Annotated[str, Field(description="The preview token (mp_...) to revoke")]


class LiveToken(BaseModel):
    id: Annotated[str, Field(description="The token's id (jti); the token itself is never listed")]
    scope: Literal["read", "interact"]
    expires_at: Annotated[str, Field(description="UTC ISO 8601, Z suffix")]
    created_at: Annotated[str, Field(description="UTC ISO 8601, Z suffix")]
    created_by: Annotated[str, Field(description="The minting credential: an API key id or a JWT sub")]
    first_used_at: Annotated[str | None, Field(description="First exchange in a browser; null until then")]


class LiveTokens(BaseModel):
    tokens: list[LiveToken]
