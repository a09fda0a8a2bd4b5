"""The token lifecycle endpoints' request and response bodies, and their service's wiring."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from preview_tokens.errors import TokenRequestError
from preview_tokens.settings import MintSettings
from preview_tokens.signing_keys import SigningKeyProvider
from preview_tokens.token_lifecycle import LifecycleTables, TokenLifecycle


class RevokeRequest(BaseModel):
    """Body of ``POST /api/v1/preview-tokens/revoke`` (RFC 7009: other fields are ignored)."""

    token: Annotated[str, Field(description="The preview token (mp_...) to revoke")]
    token_type_hint: Annotated[Literal["preview_token"] | None, Field(description="Ignored")] = None

    @classmethod
    def from_body(cls, body: str | None) -> RevokeRequest:
        try:
            document = json.loads(body or "")
        except ValueError:
            raise TokenRequestError() from None
        token = document.get("token") if isinstance(document, dict) else None
        if not isinstance(token, str) or not token:
            raise TokenRequestError()
        return cls(token=token)


class LiveToken(BaseModel):
    id: Annotated[str, Field(description="The token's id (jti); the token itself is never listed")]
    scope: Literal["read", "interact"]
    expires_at: Annotated[str, Field(description="UTC ISO 8601, Z suffix")]
    created_at: Annotated[str, Field(description="UTC ISO 8601, Z suffix")]
    created_by: Annotated[str, Field(description="The minting credential: an API key id or a JWT sub")]
    first_used_at: Annotated[str | None, Field(description="First exchange in a browser; null until then")]


class LiveTokens(BaseModel):
    tokens: list[LiveToken]


def lifecycle_from_settings(settings: MintSettings, signing_keys: SigningKeyProvider) -> TokenLifecycle:
    return TokenLifecycle(
        LifecycleTables(
            tenants=settings.tenants_table,
            api_keys=settings.api_keys_table,
            sandboxes=settings.sandboxes_table,
            preview_tokens=settings.preview_tokens_table,
            revocations=settings.revocations.table,
            audit=settings.audit.table,
        ),
        settings.audit.retention_days,
        signing_keys=signing_keys,
        # Contract 4: the lead wires EdgeStore(...).put here once the kvs branch is merged.
        edge_put=None,
    )
