"""Minting a preview token: the whole use case, independent of HTTP."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from preview_tokens.api_keys import PREVIEWS_WRITE, ApiKey, ApiKeyRepository, api_key_from_item, hash_api_key
from preview_tokens.audit import AuditEntry, AuditEvent
from preview_tokens.credentials import (
    Caller,
    CredentialVerifier,
    bearer_credential,
    is_api_key,
    require_active,
)
from preview_tokens.dynamodb import default_client, dependency_call, dependency_call_keeping
from preview_tokens.errors import (
    ForbiddenError,
    InvalidExpiresInError,
    InvalidRequestError,
    InvalidScopeError,
    RateLimitedError,
    SandboxNotFoundError,
    ServiceUnavailableError,
)
from preview_tokens.observability import logger
from preview_tokens.rate_limit import MintWindow
from preview_tokens.sandboxes import RUNNING, Sandbox, is_sandbox_id, sandbox_from_item
from preview_tokens.settings import MintSettings, PreviewUrlSettings
from preview_tokens.signing_keys import (
    DynamoDbSigningKeyStore,
    KmsKeyDecrypter,
    SigningKeyProvider,
    SigningKeyUnavailableError,
)
from preview_tokens.tenants import ACTIVE, Tenant, TenantRepository, tenant_from_item
from preview_tokens.token_records import epoch_iso, token_record_item
from preview_tokens.tokens import (
    MAX_TTL_SECONDS,
    PreviewClaims,
    Scope,
    credential_claim,
    new_token_id,
    sign_preview_token,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

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
        if body is None or not body.strip():
            return cls()
        try:
            document = json.loads(body)
        except ValueError:
            raise InvalidRequestError("The request body is not valid JSON.") from None
        if not isinstance(document, dict):
            raise InvalidRequestError("The request body must be a JSON object.")
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
    id: Annotated[str, Field(description="The token's id (jti): what the list of live previews shows")]


class ErrorDetail(BaseModel):
    code: Annotated[str, Field(description="Machine code, e.g. invalid_scope")]
    message: Annotated[str, Field(description="Human sentence")]
    retryable: Annotated[bool | None, Field(description="true on 429 and 503")] = None
    retry_after_ms: Annotated[int | None, Field(description="429 and 503: the Retry-After header in ms")] = (
        None
    )


class ErrorResponse(BaseModel):
    """Every error body has this one shape."""

    error: ErrorDetail
    request_id: Annotated[str, Field(description="The request's id, also in X-Request-Id")]


@dataclass(frozen=True)
class MintReads:
    """What the mint's one ``BatchGetItem`` found (``None``: absent, or not asked for)."""

    api_key: ApiKey | None = None
    tenant: Tenant | None = None
    sandbox: Sandbox | None = None


class TransactionOutcome(StrEnum):
    COMMITTED = "committed"
    TENANT_INACTIVE = "tenant_inactive"
    RATE_LIMITED = "rate_limited"


class MintStore:
    """The mint's DynamoDB access, two round trips on the happy path.

    1. ``BatchGetItem`` (strongly consistent): the API key by its hash, or the JWT's tenant,
       and the sandbox by id.
    2. ``TransactWriteItems``: the tenant is still active (``ConditionCheck``), the tenant's
       window counter is below its limit (``Update``, see :mod:`rate_limit`), the token record
       and the mint's audit entry (``Put``). All or nothing; the only write request of a mint.
    """

    MAX_ATTEMPTS = 6

    def __init__(self, tables: MintTables, client: DynamoDBClient | None = None) -> None:
        self.tables = tables
        self._client = client

    @property
    def client(self) -> DynamoDBClient:
        self._client = self._client or default_client()
        return self._client

    def read(
        self, sandbox_id: str, *, key_hash: str | None = None, tenant_id: str | None = None
    ) -> MintReads:
        wanted: dict[str, list[dict[str, Any]]] = {}
        if key_hash is not None:
            wanted[self.tables.api_keys] = [{"key_hash": {"S": key_hash}}]
        if tenant_id is not None:
            wanted[self.tables.tenants] = [{"tenant_id": {"S": tenant_id}}]
        if is_sandbox_id(sandbox_id):
            wanted[self.tables.sandboxes] = [{"sandbox_id": {"S": sandbox_id}}]
        found: dict[str, list[dict[str, Any]]] = {}
        request = {table: {"Keys": keys, "ConsistentRead": True} for table, keys in wanted.items()}
        for attempt in range(self.MAX_ATTEMPTS):
            with dependency_call("BatchGetItem mint"):
                answer = self.client.batch_get_item(RequestItems=request)  # type: ignore[arg-type]
            for table, items in answer.get("Responses", {}).items():
                found.setdefault(table, []).extend(items)
            request = answer.get("UnprocessedKeys") or {}  # type: ignore[assignment]
            if not request:
                break
            _backoff(attempt)
        else:
            raise ServiceUnavailableError()
        first = {table: items[0] for table, items in found.items() if items}
        return MintReads(
            api_key=api_key_from_item(first[self.tables.api_keys]) if self.tables.api_keys in first else None,
            tenant=tenant_from_item(first[self.tables.tenants]) if self.tables.tenants in first else None,
            sandbox=sandbox_from_item(first[self.tables.sandboxes])
            if self.tables.sandboxes in first
            else None,
        )

    def commit(self, items: list[dict[str, Any]], idempotency_token: str) -> TransactionOutcome:
        """Run the mint's transaction; conflicts with concurrent mints are retried."""
        for attempt in range(self.MAX_ATTEMPTS):
            try:
                with dependency_call_keeping(("TransactionCanceledException",), "TransactWriteItems mint"):
                    self.client.transact_write_items(
                        TransactItems=items,  # type: ignore[arg-type]
                        ClientRequestToken=idempotency_token,
                    )
                return TransactionOutcome.COMMITTED
            except ClientError as error:
                reasons = [reason.get("Code") for reason in error.response.get("CancellationReasons", [])]
                if len(reasons) > 1 and reasons[0] == "ConditionalCheckFailed":
                    return TransactionOutcome.TENANT_INACTIVE
                if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                    return TransactionOutcome.RATE_LIMITED
                if "TransactionConflict" not in reasons:
                    logger.warning("mint transaction cancelled", extra={"reasons": reasons})
                    raise ServiceUnavailableError() from None
            _backoff(attempt)
        logger.warning("mint transaction kept conflicting")
        raise ServiceUnavailableError()


def _backoff(attempt: int) -> None:
    time.sleep(random.uniform(0.005, 0.025) * (2**attempt))  # noqa: S311 - jitter, not a secret


@dataclass(frozen=True)
class MintTables:
    tenants: str
    api_keys: str
    sandboxes: str
    preview_tokens: str
    mint_counters: str
    audit: str


class TenantCache:
    """Tenants as an API-key mint last read them, for ``ttl_seconds``.

    An API key names its tenant only once read, so the tenant cannot join the first round trip;
    the cache keeps a warm mint at two. What it may serve stale is harmless: whether the tenant
    is active is re-checked inside the mint's transaction, and a new rate limit or a disable
    takes effect within ``ttl_seconds``.
    """

    def __init__(
        self,
        tenants: TenantRepository,
        ttl_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tenants = tenants
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: dict[str, tuple[float, Tenant]] = {}

    def get(self, tenant_id: str) -> Tenant | None:
        now = self._clock()
        cached = self._entries.get(tenant_id)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        tenant = self._tenants.get(tenant_id)
        if tenant is not None:
            self.remember(tenant)
        return tenant

    def remember(self, tenant: Tenant) -> None:
        if len(self._entries) >= 1024:
            self._entries.clear()
        self._entries[tenant.tenant_id] = (self._clock(), tenant)

    def forget(self, tenant_id: str) -> None:
        self._entries.pop(tenant_id, None)


@dataclass(frozen=True)
class PreviewMinter:
    store: MintStore
    signing_keys: SigningKeyProvider
    previews: PreviewUrlSettings
    default_rate_per_minute: int
    audit_retention_days: int
    clock: Callable[[], float] = time.time

    def mint(
        self, caller: Caller, tenant: Tenant, sandbox: Sandbox | None, request: MintRequest, request_id: str
    ) -> MintResponse:
        if PREVIEWS_WRITE not in caller.scopes:
            logger.info("mint refused", extra={"reason": "missing previews:write"})
            raise ForbiddenError("This credential lacks the previews:write scope.")
        if sandbox is None or sandbox.tenant_id != caller.tenant_id or sandbox.status != RUNNING:
            raise SandboxNotFoundError()
        try:
            key = self.signing_keys.signing_key()
        except SigningKeyUnavailableError as error:
            logger.error("signing key unavailable", extra={"error_type": type(error).__name__})
            raise ServiceUnavailableError() from None
        moment = self.clock()
        now = int(moment)
        claims = PreviewClaims(
            sandbox_id=sandbox.sandbox_id,
            tenant_id=sandbox.tenant_id,
            host=self.previews.host_for(sandbox.sandbox_id),
            scope=Scope(request.scope),
            # A token minted after a revocation of its sandbox or tenant in this same second must
            # pass that revocation's not-before marker (markers have one-second resolution).
            issued_at=max(now, sandbox.tokens_not_before, tenant.tokens_not_before),
            expires_at=now + request.expires_in,
            token_id=new_token_id(),
            credential_id=credential_claim(caller.credential_id),
        )
        token = sign_preview_token(claims, key.kid, key.secret)
        window = MintWindow.at(caller.tenant_id, moment)
        outcome = self.store.commit(
            self._transaction(caller, claims, window, tenant, request_id), claims.token_id
        )
        if outcome is TransactionOutcome.TENANT_INACTIVE:
            logger.info("mint refused", extra={"reason": "tenant disabled"})
            raise ForbiddenError()
        if outcome is TransactionOutcome.RATE_LIMITED:
            logger.info("mint refused", extra={"reason": "rate limited", "tenant_id": caller.tenant_id})
            raise RateLimitedError(window.retry_after(self.clock()))
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
            expires_at=epoch_iso(claims.expires_at),
            scope=request.scope,
            id=claims.token_id,
        )

    def _transaction(
        self, caller: Caller, claims: PreviewClaims, window: MintWindow, tenant: Tenant, request_id: str
    ) -> list[dict[str, Any]]:
        tables = self.store.tables
        audit = AuditEntry(
            AuditEvent.MINT,
            claims.tenant_id,
            caller.credential_id,
            request_id,
            sandbox_id=claims.sandbox_id,
            token_id=claims.token_id,
            scope=claims.scope.value,
            token_expires_at=claims.expires_at,
            credential_id=caller.credential_id,
        )
        return [
            {
                "ConditionCheck": {
                    "TableName": tables.tenants,
                    "Key": {"tenant_id": {"S": claims.tenant_id}},
                    "ConditionExpression": "#status = :active",
                    "ExpressionAttributeNames": {"#status": "status"},
                    "ExpressionAttributeValues": {":active": {"S": ACTIVE}},
                }
            },
            window.counter_update(
                tables.mint_counters, tenant.mint_rate_per_minute or self.default_rate_per_minute
            ),
            {
                "Put": {
                    "TableName": tables.preview_tokens,
                    "Item": token_record_item(claims, caller.credential_id, datetime.now(UTC)),
                }
            },
            {"Put": {"TableName": tables.audit, "Item": audit.to_item(self.audit_retention_days)}},
        ]


@dataclass(frozen=True)
class MintService:
    """Everything a mint request needs, built once per cold start from the settings."""

    credentials: CredentialVerifier
    tenants: TenantCache
    minter: PreviewMinter

    def mint(
        self, authorization: str | None, sandbox_id: str, body: str | None, request_id: str
    ) -> MintResponse:
        credential = bearer_credential(authorization)
        store = self.minter.store
        if is_api_key(credential):
            reads = store.read(sandbox_id, key_hash=hash_api_key(credential))
            caller = self.credentials.caller_for_api_key(reads.api_key)
            tenant = self.tenants.get(caller.tenant_id)
        else:
            caller = self.credentials.caller_for_jwt(credential)
            reads = store.read(sandbox_id, tenant_id=caller.tenant_id)
            tenant = reads.tenant
            if tenant is not None:
                self.tenants.remember(tenant)
        active = require_active(tenant)
        request = MintRequest.from_body(body)
        try:
            return self.minter.mint(caller, active, reads.sandbox, request, request_id)
        except ForbiddenError:
            self.tenants.forget(caller.tenant_id)
            raise

    @classmethod
    def from_settings(cls, settings: MintSettings) -> MintService:
        tenants = TenantRepository(settings.tenants_table)
        return cls(
            credentials=CredentialVerifier(ApiKeyRepository(settings.api_keys_table), tenants, settings.jwt),
            tenants=TenantCache(tenants),
            minter=PreviewMinter(
                store=MintStore(
                    MintTables(
                        tenants=settings.tenants_table,
                        api_keys=settings.api_keys_table,
                        sandboxes=settings.sandboxes_table,
                        preview_tokens=settings.preview_tokens_table,
                        mint_counters=settings.mint_counters_table,
                        audit=settings.audit.table,
                    )
                ),
                signing_keys=SigningKeyProvider(
                    DynamoDbSigningKeyStore(settings.signing_keys.table),
                    KmsKeyDecrypter(),
                    settings.signing_keys.refresh_seconds,
                ),
                previews=settings.previews,
                default_rate_per_minute=settings.default_mint_rate_per_minute,
                audit_retention_days=settings.audit.retention_days,
            ),
        )
