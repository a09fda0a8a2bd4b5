"""Ending tokens before their ``exp``: the tenant's revocation API and the operator's lifecycle.

Every revocation is one ``TransactWriteItems``: the state change (a token record's
``revoked_at``, a sandbox's or tenant's ``tokens_not_before``), the feed entry the data plane
reads (:mod:`revocations`) and the audit entry; then the same entry goes to the edge store
(contract 4: ``rv.<jti>`` = the token's ``exp``; ``rs.<sandbox_id>``, ``rt.<tenant_id>``,
``rc.<credential_id>`` = the not-before epoch second), which the CloudFront stream verifier
reads. Until the KeyValueStore module is merged, the edge store is a ``put(key, value)``
callable (``EdgePut``); a failed edge write answers 503, and repeating the call is harmless.

Tenant side (``previews:write``, the caller's tenant only, spec part 2 "Lifecycle"):
:meth:`TokenLifecycle.revoke_token` (RFC 7009: the same ``200`` whatever the token was),
:meth:`revoke_sandbox_tokens`, :meth:`live_tokens`. Operator side (CLI): deleting a sandbox,
disabling a tenant, revoking an API key with its tokens end the tokens they issued.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from preview_tokens.control_plane.api_keys import ApiKeyRepository
from preview_tokens.control_plane.audit import OPERATOR, AuditEntry, AuditEvent
from preview_tokens.control_plane.credentials import Caller
from preview_tokens.control_plane.request_body import parse_json_object
from preview_tokens.control_plane.revocations import Revocation, RevocationKind, not_before_marker
from preview_tokens.control_plane.sandboxes import DELETED, RUNNING, Sandbox, SandboxRepository
from preview_tokens.control_plane.tenants import DISABLED, TenantRepository
from preview_tokens.control_plane.token_records import CREDENTIAL_INDEX, TokenRecord, iso
from preview_tokens.errors import (
    InvalidRequestError,
    SandboxNotFoundError,
    ServiceUnavailableError,
    TokenNotFoundError,
    TokenRequestError,
)
from preview_tokens.keys.dynamodb import default_client, dependency_call, dependency_call_keeping
from preview_tokens.keys.signing_keys import SigningKeyProvider, SigningKeyUnavailableError
from preview_tokens.keys.tokens import InvalidTokenError, credential_claim, verify_preview_token
from preview_tokens.observability import logger
from preview_tokens.settings import MintSettings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

EdgePut = Callable[[str, str], None]
"""Writes one key of the edge store (``EdgeStore.put`` once the kvs branch is merged)."""


@dataclass(frozen=True)
class LifecycleTables:
    tenants: str
    api_keys: str
    sandboxes: str
    preview_tokens: str
    revocations: str
    audit: str


class TokenLifecycle:
    def __init__(
        self,
        tables: LifecycleTables,
        audit_retention_days: int,
        signing_keys: SigningKeyProvider | None = None,
        edge_put: EdgePut | None = None,
        client: DynamoDBClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tables = tables
        self._retention = audit_retention_days
        self._signing_keys = signing_keys
        self._edge_put = edge_put
        self._client = client
        self._clock = clock

    @property
    def client(self) -> DynamoDBClient:
        self._client = self._client or default_client()
        return self._client

    # ------------------------------------------------------------------ tenant API

    def revoke_token(self, caller: Caller, token: str, request_id: str) -> None:
        """Revoke the caller's own live token; anything else is silently a no-op (RFC 7009)."""
        caller.require_previews_write("lifecycle call")
        if self._signing_keys is None:
            raise ServiceUnavailableError()
        try:
            claims = verify_preview_token(
                token, self._signing_keys.key_ring().secrets_by_kid, int(self._clock())
            )
        except SigningKeyUnavailableError:
            raise ServiceUnavailableError() from None
        except InvalidTokenError:
            logger.info("revocation ignored", extra={"reason": "not a live token signed here"})
            return
        if claims.tenant_id != caller.tenant_id:
            logger.info("revocation ignored", extra={"reason": "another tenant's token"})
            return
        now = self._clock()
        entry = Revocation(RevocationKind.TOKEN, claims.token_id, claims.expires_at, int(now * 1000))
        audit = AuditEntry.of_token(
            AuditEvent.REVOKE,
            claims,
            caller.credential_id,
            request_id,
            credential_id=claims.credential_id or None,
            revoked="token",
        )
        mark_record = self._mark_revoked(claims.sandbox_id, claims.token_id, now)
        if not self._transact([mark_record, *self._entry_items(entry, audit)], allow_cancel=True):
            logger.info("revocation not repeated", extra={"reason": "already revoked or never recorded"})
            self._transact(self._entry_items(entry, audit))
        self._publish(entry)

    def revoke_sandbox_tokens(self, caller: Caller, sandbox_id: str, request_id: str) -> None:
        """Revoke every token minted for the caller's sandbox until now."""
        self._callers_sandbox(caller, sandbox_id)
        marker = not_before_marker(RevocationKind.SANDBOX, sandbox_id, self._clock())
        audit = AuditEntry(
            AuditEvent.REVOKE,
            caller.tenant_id,
            caller.credential_id,
            request_id,
            sandbox_id=sandbox_id,
            revoked="sandbox",
        )
        state = self._set_not_before("sandboxes", sandbox_id, marker, caller.tenant_id, RUNNING)
        if not self._transact([state, *self._entry_items(marker, audit)], allow_cancel=True):
            raise SandboxNotFoundError()  # deleted or handed over between the read and the write
        self._publish(marker)

    def revoke_sandbox_token(self, caller: Caller, sandbox_id: str, token_id: str, request_id: str) -> None:
        """Revoke one token of the caller's sandbox by its id (as the live-token list shows it).

        Idempotent: a token already revoked or expired is done. ``token_not_found`` when no token
        with this id was minted for this sandbox (or it was another tenant's), ``sandbox_not_found``
        as for minting.
        """
        self._callers_sandbox(caller, sandbox_id)
        with dependency_call("GetItem preview_tokens"):
            item = self.client.get_item(
                TableName=self.tables.preview_tokens,
                Key={"sandbox_id": {"S": sandbox_id}, "jti": {"S": token_id}},
                ConsistentRead=True,
            ).get("Item")
        record = TokenRecord.from_item(item) if item else None
        if record is None or record.tenant_id != caller.tenant_id:
            raise TokenNotFoundError()
        now = self._clock()
        entry = Revocation(RevocationKind.TOKEN, record.token_id, record.expires_at, int(now * 1000))
        audit = AuditEntry(
            AuditEvent.REVOKE,
            caller.tenant_id,
            caller.credential_id,
            request_id,
            sandbox_id=sandbox_id,
            token_id=record.token_id,
            scope=record.scope,
            token_expires_at=record.expires_at,
            credential_id=record.credential_id or None,
            revoked="token",
        )
        if record.revoked_at is not None or record.expires_at <= int(now):
            logger.info("revocation not repeated", extra={"reason": "already revoked or expired"})
            return
        mark_record = self._mark_revoked(sandbox_id, record.token_id, now)
        if not self._transact([mark_record, *self._entry_items(entry, audit)], allow_cancel=True):
            logger.info("revocation not repeated", extra={"reason": "revoked meanwhile"})
            return
        self._publish(entry)

    def live_tokens(self, caller: Caller, sandbox_id: str) -> list[dict[str, object]]:
        """The sandbox's tokens that still open a preview: not expired, not revoked in any way."""
        sandbox = self._callers_sandbox(caller, sandbox_id)
        return [record.as_listed() for record in self._live_records(caller.tenant_id, sandbox)]

    def count_live_tokens(self, tenant_id: str, sandbox_id: str) -> int:
        """How many of the tenant's running sandbox's tokens still open a preview (operator CLI)."""
        sandbox = SandboxRepository(self.tables.sandboxes, self.client).find_in_tenant(tenant_id, sandbox_id)
        return 0 if sandbox is None else len(self._live_records(tenant_id, sandbox))

    def _live_records(self, tenant_id: str, sandbox: Sandbox) -> list[TokenRecord]:
        tenant = TenantRepository(self.tables.tenants, self.client).get(tenant_id)
        not_before = max(sandbox.tokens_not_before, tenant.tokens_not_before if tenant else 0)
        now = int(self._clock())
        records: list[TokenRecord] = []
        with dependency_call("Query preview_tokens"):
            for page in self.client.get_paginator("query").paginate(
                TableName=self.tables.preview_tokens,
                KeyConditionExpression="sandbox_id = :sandbox",
                FilterExpression="#exp > :now AND attribute_not_exists(revoked_at) AND iat >= :not_before",
                ExpressionAttributeNames={"#exp": "exp"},
                ExpressionAttributeValues={
                    ":sandbox": {"S": sandbox.sandbox_id},
                    ":now": {"N": str(now)},
                    ":not_before": {"N": str(not_before)},
                },
                ConsistentRead=True,
            ):
                records.extend(TokenRecord.from_item(item) for item in page.get("Items", []))
        records = [record for record in records if record.tenant_id == tenant_id]
        records.sort(key=lambda record: (record.created_at, record.token_id))
        return records

    # ------------------------------------------------------------------ operator lifecycle

    def delete_sandbox(self, tenant_id: str, sandbox_id: str, request_id: str) -> bool:
        """Delete (tombstone) the tenant's sandbox and end its tokens; ``False`` if it has none such."""
        marker = not_before_marker(RevocationKind.SANDBOX, sandbox_id, self._clock())
        audit = AuditEntry(
            AuditEvent.REVOKE, tenant_id, OPERATOR, request_id, sandbox_id=sandbox_id, revoked="sandbox"
        )
        state = self._set_not_before("sandboxes", sandbox_id, marker, tenant_id, None, new_status=DELETED)
        if not self._transact([state, *self._entry_items(marker, audit)], allow_cancel=True):
            return False
        self._publish(marker)
        return True

    def disable_tenant(self, tenant_id: str, request_id: str) -> bool:
        """Disable a tenant and end every token it minted; ``False`` if there is no such tenant."""
        marker = not_before_marker(RevocationKind.TENANT, tenant_id, self._clock())
        audit = AuditEntry(AuditEvent.REVOKE, tenant_id, OPERATOR, request_id, revoked="tenant")
        state = self._set_not_before("tenants", tenant_id, marker, None, None, new_status=DISABLED)
        if not self._transact([state, *self._entry_items(marker, audit)], allow_cancel=True):
            return False
        self._publish(marker)
        return True

    def revoke_api_key(self, tenant_id: str, key_id: str, with_tokens: bool, request_id: str) -> bool:
        """Revoke a key (no new mints); ``with_tokens`` also ends every token it minted."""
        if not ApiKeyRepository(self.tables.api_keys, self.client).revoke(tenant_id, key_id):
            return False
        if not with_tokens:
            return True
        credential = credential_claim(key_id)
        marker = not_before_marker(RevocationKind.CREDENTIAL, credential, self._clock())
        audit = AuditEntry(
            AuditEvent.REVOKE, tenant_id, OPERATOR, request_id, credential_id=key_id, revoked="credential"
        )
        self._transact(self._entry_items(marker, audit))
        self._publish(marker)
        self._mark_records_of_credential(credential, marker.recorded_at_ms)
        return True

    # ------------------------------------------------------------------ writes

    def _callers_sandbox(self, caller: Caller, sandbox_id: str) -> Sandbox:
        """The caller's running sandbox, or ``sandbox_not_found`` exactly as for minting."""
        caller.require_previews_write("lifecycle call")
        sandbox = SandboxRepository(self.tables.sandboxes, self.client).find_in_tenant(
            caller.tenant_id, sandbox_id
        )
        if sandbox is None:
            raise SandboxNotFoundError()
        return sandbox

    def _mark_revoked(self, sandbox_id: str, token_id: str, now: float) -> dict[str, Any]:
        """The transaction item that sets a token record's ``revoked_at`` (once)."""
        return {
            "Update": {
                "TableName": self.tables.preview_tokens,
                "Key": {"sandbox_id": {"S": sandbox_id}, "jti": {"S": token_id}},
                "UpdateExpression": "SET revoked_at = :now",
                "ConditionExpression": "attribute_exists(jti) AND attribute_not_exists(revoked_at)",
                "ExpressionAttributeValues": {":now": {"S": iso(datetime.fromtimestamp(now, UTC))}},
            }
        }

    def _entry_items(self, entry: Revocation, audit: AuditEntry) -> list[dict[str, Any]]:
        return [
            {"Put": {"TableName": self.tables.revocations, "Item": entry.to_item()}},
            {"Put": {"TableName": self.tables.audit, "Item": audit.to_item(self._retention)}},
        ]

    def _set_not_before(
        self,
        table: str,
        subject: str,
        marker: Revocation,
        owner_tenant: str | None,
        required_status: str | None,
        new_status: str | None = None,
    ) -> dict[str, Any]:
        """Set the subject's ``tokens_not_before`` (and status) if it exists (and is the owner's)."""
        key_name = "sandbox_id" if table == "sandboxes" else "tenant_id"
        conditions = [f"attribute_exists({key_name})"]
        values: dict[str, Any] = {":not_before": {"N": str(marker.value)}}
        names: dict[str, str] = {}
        update = "SET tokens_not_before = :not_before"
        if owner_tenant is not None:
            conditions.append("tenant_id = :tenant")
            values[":tenant"] = {"S": owner_tenant}
        if required_status is not None or new_status is not None:
            names["#status"] = "status"
        if required_status is not None:
            conditions.append("#status = :required")
            values[":required"] = {"S": required_status}
        if new_status is not None:
            update += ", #status = :status"
            values[":status"] = {"S": new_status}
        request: dict[str, Any] = {
            "TableName": self.tables.sandboxes if table == "sandboxes" else self.tables.tenants,
            "Key": {key_name: {"S": subject}},
            "UpdateExpression": update,
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeValues": values,
        }
        if names:
            request["ExpressionAttributeNames"] = names
        return {"Update": request}

    def _transact(self, items: list[dict[str, Any]], allow_cancel: bool = False) -> bool:
        """``False`` when a condition cancelled the transaction (only if ``allow_cancel``)."""
        try:
            with dependency_call_keeping(("TransactionCanceledException",), "TransactWriteItems revocation"):
                self.client.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
        except ClientError as error:
            reasons = [reason.get("Code") for reason in error.response.get("CancellationReasons", [])]
            if allow_cancel and "ConditionalCheckFailed" in reasons:
                return False
            logger.warning("revocation transaction cancelled", extra={"reasons": reasons})
            raise ServiceUnavailableError() from None
        return True

    def _publish(self, entry: Revocation) -> None:
        if self._edge_put is None:
            return
        try:
            self._edge_put(entry.edge_key, str(entry.value))
        except Exception as error:  # the edge store's client is not ours: any failure is a 503
            logger.warning("edge store write failed", extra={"error_type": type(error).__name__})
            raise ServiceUnavailableError() from None

    def _mark_records_of_credential(self, credential: str, at_ms: int) -> None:
        """Set ``revoked_at`` on the credential's live token records, so the list stops showing them."""
        revoked_at = iso(datetime.fromtimestamp(at_ms / 1000, UTC))
        with dependency_call("Query preview_tokens by_credential"):
            pages = list(
                self.client.get_paginator("query").paginate(
                    TableName=self.tables.preview_tokens,
                    IndexName=CREDENTIAL_INDEX,
                    KeyConditionExpression="credential_id = :credential",
                    ExpressionAttributeValues={":credential": {"S": credential}},
                )
            )
        for page in pages:
            for item in page.get("Items", []):
                with dependency_call("UpdateItem preview_tokens"):
                    self.client.update_item(
                        TableName=self.tables.preview_tokens,
                        Key={"sandbox_id": item["sandbox_id"], "jti": item["jti"]},
                        UpdateExpression="SET revoked_at = if_not_exists(revoked_at, :now)",
                        ExpressionAttributeValues={":now": {"S": revoked_at}},
                    )


def token_to_revoke(body: str | None, content_type: str | None = None) -> str:
    """The ``token`` of a revocation body (:class:`preview_tokens.control_plane.api_models.RevokeRequest`),
    read by the API's one strict parser (:mod:`request_body`): ``{"token": "mp_..."}`` and nothing else."""
    try:
        document = parse_json_object(body, content_type, fields=("token",))
    except InvalidRequestError as error:
        raise TokenRequestError(error.message) from None
    token = document.get("token") if document is not None else None
    if not isinstance(token, str):
        raise TokenRequestError()
    return token


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
