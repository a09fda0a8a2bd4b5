"""Minting a preview token: the whole use case, independent of HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from preview_tokens.api_keys import PREVIEWS_WRITE, ApiKeyRepository
from preview_tokens.credentials import Caller, CredentialVerifier
from preview_tokens.errors import (
    ForbiddenError,
    InvalidExpiresInError,
    InvalidRequestError,
    InvalidScopeError,
    SandboxNotFoundError,
    ServiceUnavailableError,
)
from preview_tokens.observability import logger
from preview_tokens.request_body import parse_json_object
from preview_tokens.sandboxes import SandboxRepository
from preview_tokens.settings import MintSettings, PreviewUrlSettings
from preview_tokens.signing_keys import (
    DynamoDbSigningKeyStore,
    KmsKeyDecrypter,
    SigningKeyProvider,
    SigningKeyUnavailableError,
)
from preview_tokens.tenants import TenantRepository
from preview_tokens.tokens import MAX_TTL_SECONDS, PreviewClaims, Scope, new_token_id, sign_preview_token

DEFAULT_TTL_SECONDS = 3600


class MintRequest(BaseModel):
    """Request body of ``POST /api/v1/sandboxes/{id}/preview-token``; every field optional."""

    model_config = ConfigDict(extra="forbid", strict=True)

    expires_in: Annotated[int, Field(ge=1, le=MAX_TTL_SECONDS, description="Token TTL in seconds")] = (
        DEFAULT_TTL_SECONDS
    )
    scope: Annotated[Literal["read", "interact"], Field(description="read: view only; interact: input")] = (
        "read"
    )

    @classmethod
    def from_body(cls, body: str | None) -> MintRequest:
        """Parse a raw request body; an absent or empty body means every default."""
        document = parse_json_object(body)
        if document is None:
            return cls()
        try:
            return cls.model_validate(document)
        except ValidationError as error:
            fields = {str(detail["loc"][0]) for detail in error.errors() if detail["loc"]}
            if fields - {"expires_in", "scope"}:
                raise InvalidRequestError() from None
            if "scope" in fields:
                raise InvalidScopeError() from None
            raise InvalidExpiresInError() from None


class MintResponse(BaseModel):
    token: Annotated[str, Field(description="Signed preview token (mp_<base64url>); opaque")]
    url: Annotated[str, Field(description="Iframe-ready URL with the token as the ?mt= parameter")]
    expires_at: Annotated[str, Field(description="Expiry, UTC ISO 8601 with a Z suffix")]
    scope: Literal["read", "interact"]


class ErrorDetail(BaseModel):
    code: Annotated[str, Field(description="Machine code, e.g. invalid_scope")]
    message: Annotated[str, Field(description="Human sentence")]
    retryable: Annotated[bool | None, Field(description="429 and 503 only: true")] = None
    retry_after_ms: Annotated[int | None, Field(description="429 and 503 only: Retry-After in ms")] = None


class ErrorResponse(BaseModel):
    """Every error body has this one shape."""

    error: ErrorDetail
    request_id: Annotated[str, Field(description="Also in the X-Request-Id header")]


@dataclass(frozen=True)
class PreviewMinter:
    sandboxes: SandboxRepository
    signing_keys: SigningKeyProvider
    previews: PreviewUrlSettings
    clock: Callable[[], float] = time.time

    def mint(self, caller: Caller, sandbox_id: str, request: MintRequest) -> MintResponse:
        if PREVIEWS_WRITE not in caller.scopes:
            logger.info("mint refused", extra={"reason": "missing previews:write"})
            raise ForbiddenError("This credential lacks the previews:write scope.")
        sandbox = self.sandboxes.find_in_tenant(caller.tenant_id, sandbox_id)
        if sandbox is None:
            raise SandboxNotFoundError()
        try:
            key = self.signing_keys.signing_key()
        except SigningKeyUnavailableError as error:
            logger.error("signing key unavailable", extra={"error_type": type(error).__name__})
            raise ServiceUnavailableError() from None
        now = int(self.clock())
        claims = PreviewClaims(
            sandbox_id=sandbox.sandbox_id,
            tenant_id=sandbox.tenant_id,
            host=self.previews.host_for(sandbox.sandbox_id),
            scope=Scope(request.scope),
            issued_at=now,
            expires_at=now + request.expires_in,
            token_id=new_token_id(),
        )
        token = sign_preview_token(claims, key.kid, key.secret)
        logger.info(
            "preview token minted",
            extra={
                "tenant_id": claims.tenant_id,
                "sandbox_id": claims.sandbox_id,
                "scope": claims.scope.value,
                "kid": key.kid,
                "jti": claims.token_id,
                "expires_in": request.expires_in,
            },
        )
        return MintResponse(
            token=token,
            url=self.previews.url_for(sandbox.sandbox_id, token),
            expires_at=datetime.fromtimestamp(claims.expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            scope=request.scope,
        )


@dataclass(frozen=True)
class MintService:
    """Everything a mint request needs, built once per cold start from the settings."""

    credentials: CredentialVerifier
    minter: PreviewMinter

    def mint(self, authorization: str | None, sandbox_id: str, body: str | None) -> MintResponse:
        caller = self.credentials.authenticate(authorization)
        request = MintRequest.from_body(body)
        return self.minter.mint(caller, sandbox_id, request)

    @classmethod
    def from_settings(cls, settings: MintSettings) -> MintService:
        return cls(
            credentials=CredentialVerifier(
                ApiKeyRepository(settings.api_keys_table),
                TenantRepository(settings.tenants_table),
                settings.jwt,
            ),
            minter=PreviewMinter(
                sandboxes=SandboxRepository(settings.sandboxes_table),
                signing_keys=SigningKeyProvider(
                    DynamoDbSigningKeyStore(settings.signing_keys.table),
                    KmsKeyDecrypter(),
                    settings.signing_keys.refresh_seconds,
                ),
                previews=settings.previews,
            ),
        )
