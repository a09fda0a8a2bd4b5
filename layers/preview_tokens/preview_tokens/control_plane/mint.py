"""Minting a preview token: the whole use case, independent of HTTP."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from preview_tokens.control_plane.api_keys import (
    ApiKey,
    ApiKeyRepository,
    api_key_from_item,
    hash_api_key,
)
from preview_tokens.control_plane.audit import AuditEntry, AuditEvent
from preview_tokens.control_plane.credentials import (
    Caller,
    CredentialVerifier,
    bearer_credential,
    is_api_key,
    require_active,
)
from preview_tokens.control_plane.rate_limit import MintWindow
from preview_tokens.control_plane.request_body import parse_json_object
from preview_tokens.control_plane.sandboxes import RUNNING, Sandbox, is_sandbox_id, sandbox_from_item
from preview_tokens.control_plane.tenants import ACTIVE, Tenant, TenantRepository, tenant_from_item
from preview_tokens.control_plane.token_records import epoch_iso, token_record_item
from preview_tokens.errors import (
    ForbiddenError,
    InvalidExpiresInError,
    InvalidRequestError,
    InvalidScopeError,
    RateLimitedError,
    SandboxNotFoundError,
    ServiceUnavailableError,
)
from preview_tokens.keys.aws_json import AwsJsonClient, AwsServiceError
from preview_tokens.keys.signing_keys import (
    DynamoDbSigningKeyStore,
    KmsKeyDecrypter,
    SigningKeyProvider,
    SigningKeyUnavailableError,
)
from preview_tokens.keys.tokens import (
    MAX_TTL_SECONDS,
    PreviewClaims,
    Scope,
    credential_claim,
    new_token_id,
    sign_preview_token,
)
from preview_tokens.observability import count_key_refresh_failure, logger
from preview_tokens.settings import MintSettings, PreviewUrlSettings

DEFAULT_TTL_SECONDS = 3600
SCOPES = ("read", "interact")


@dataclass(frozen=True)
class MintBody:
    """The request body of a mint, validated by hand: pydantic's import alone would cost the mint's
    cold start more than its whole budget (README "Performance"). It is the contract documented by
    :class:`preview_tokens.control_plane.api_models.MintRequest`; a unit test holds the two to the
    same verdicts."""

    expires_in: int = DEFAULT_TTL_SECONDS
    scope: str = "read"

    @classmethod
    def from_body(cls, body: str | None, content_type: str | None = None) -> MintBody:
        """Parse a raw request body; an absent or empty body means every default."""
        document = parse_json_object(body, content_type)
        if document is None:
            return cls()
        if set(document) - {"expires_in", "scope"}:
            raise InvalidRequestError()
        scope = document.get("scope", "read")
        if scope not in SCOPES or type(scope) is not str:
            raise InvalidScopeError()
        expires_in = whole_number(document.get("expires_in", DEFAULT_TTL_SECONDS))
        if expires_in is None or not 1 <= expires_in <= MAX_TTL_SECONDS:
            raise InvalidExpiresInError()
        return cls(expires_in, scope)


def whole_number(value: object) -> int | None:
    """A JSON Schema ``integer``: ``609`` or ``609.0`` (a number with a zero fractional part), never
    ``true``, ``"609"`` or ``609.5``; ``None`` when ``value`` is not one."""
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    return None


@dataclass(frozen=True)
class MintedToken:
    """The mint's answer (:class:`preview_tokens.control_plane.api_models.MintResponse` documents it)."""

    token: str = field(repr=False)
    url: str = field(repr=False)
    expires_at: str
    scope: str
    id: str

    def as_json(self) -> dict[str, str]:
        return {
            "token": self.token,
            "url": self.url,
            "expires_at": self.expires_at,
            "scope": self.scope,
            "id": self.id,
        }


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

    Through the SigV4 JSON client, not boto3: importing boto3 and building its client cost more
    than the mint's cold-start budget. A warm mint reuses the client's connection settings.
    """

    MAX_ATTEMPTS = 6

    def __init__(self, tables: MintTables, client: AwsJsonClient | None = None) -> None:
        self.tables = tables
        self._client = client

    @property
    def client(self) -> AwsJsonClient:
        self._client = self._client or AwsJsonClient("dynamodb")
        return self._client

    def _call(self, operation: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.client.call(operation, payload)
        except AwsServiceError as error:
            if error.code == "TransactionCanceledException":
                raise
            logger.warning("dynamodb call failed", extra={"operation": operation, "error_code": error.code})
            raise ServiceUnavailableError() from None

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
        request: dict[str, Any] = {
            table: {"Keys": keys, "ConsistentRead": True} for table, keys in wanted.items()
        }
        for attempt in range(self.MAX_ATTEMPTS):
            answer = self._call("BatchGetItem", {"RequestItems": request})
            for table, items in (answer.get("Responses") or {}).items():
                found.setdefault(table, []).extend(items)
            request = answer.get("UnprocessedKeys") or {}
            if not request:
                break
            _backoff(attempt)
        else:  # DynamoDB kept some keys unprocessed (throttled): retry later
            raise ServiceUnavailableError()
        first = {table: items[0] for table, items in found.items() if items}
        try:
            return MintReads(
                api_key=api_key_from_item(first[self.tables.api_keys])
                if self.tables.api_keys in first
                else None,
                tenant=tenant_from_item(first[self.tables.tenants]) if self.tables.tenants in first else None,
                sandbox=sandbox_from_item(first[self.tables.sandboxes])
                if self.tables.sandboxes in first
                else None,
            )
        except (KeyError, TypeError, ValueError) as error:
            logger.error("malformed item", extra={"error_type": type(error).__name__})
            raise ServiceUnavailableError() from None

    def tenant(self, tenant_id: str) -> Tenant | None:
        """One tenant, strongly consistent (an API-key mint whose tenant is not cached)."""
        answer = self._call(
            "GetItem",
            {
                "TableName": self.tables.tenants,
                "Key": {"tenant_id": {"S": tenant_id}},
                "ConsistentRead": True,
            },
        )
        item = answer.get("Item")
        return tenant_from_item(item) if isinstance(item, dict) else None

    def commit(self, items: list[dict[str, Any]], idempotency_token: str) -> TransactionOutcome:
        """Run the mint's transaction; conflicts with concurrent mints are retried."""
        for attempt in range(self.MAX_ATTEMPTS):
            try:
                self._call(
                    "TransactWriteItems", {"TransactItems": items, "ClientRequestToken": idempotency_token}
                )
                return TransactionOutcome.COMMITTED
            except AwsServiceError as error:
                cancelled = error.details.get("CancellationReasons")
                reasons = (
                    [r.get("Code") for r in cancelled if isinstance(r, dict)]
                    if isinstance(cancelled, list)
                    else []
                )
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
        load: Callable[[str], Tenant | None],
        ttl_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: dict[str, tuple[float, Tenant]] = {}

    def get(self, tenant_id: str) -> Tenant | None:
        now = self._clock()
        cached = self._entries.get(tenant_id)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        tenant = self._load(tenant_id)
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
        self, caller: Caller, tenant: Tenant, sandbox: Sandbox | None, request: MintBody, request_id: str
    ) -> MintedToken:
        caller.require_previews_write("mint")
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
        return MintedToken(
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
        audit = AuditEntry.of_token(
            AuditEvent.MINT,
            claims,
            caller.credential_id,
            request_id,
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
        self,
        authorization: str | None,
        sandbox_id: str,
        body: str | None,
        request_id: str,
        content_type: str | None = None,
    ) -> MintedToken:
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
        caller.require_previews_write("mint")
        request = MintBody.from_body(body, content_type)
        try:
            return self.minter.mint(caller, active, reads.sandbox, request, request_id)
        except ForbiddenError:
            self.tenants.forget(caller.tenant_id)
            raise

    @classmethod
    def from_settings(cls, settings: MintSettings) -> MintService:
        store = MintStore(
            MintTables(
                tenants=settings.tenants_table,
                api_keys=settings.api_keys_table,
                sandboxes=settings.sandboxes_table,
                preview_tokens=settings.preview_tokens_table,
                mint_counters=settings.mint_counters_table,
                audit=settings.audit.table,
            )
        )
        return cls(
            credentials=CredentialVerifier(
                ApiKeyRepository(settings.api_keys_table),
                TenantRepository(settings.tenants_table),
                settings.jwt,
            ),
            tenants=TenantCache(store.tenant),
            minter=PreviewMinter(
                store=store,
                signing_keys=SigningKeyProvider(
                    DynamoDbSigningKeyStore(settings.signing_keys.table),
                    KmsKeyDecrypter(),
                    settings.signing_keys.refresh_seconds,
                    on_refresh_failure=count_key_refresh_failure,
                ),
                previews=settings.previews,
                default_rate_per_minute=settings.default_mint_rate_per_minute,
                audit_retention_days=settings.audit.retention_days,
            ),
        )
