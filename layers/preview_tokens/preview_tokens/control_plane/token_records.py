"""Token records: one item per minted token, for the tenant's list of live previews.

``PreviewTokensTable``: partition ``sandbox_id``, sort key ``jti`` (list a sandbox's tokens:
one Query), a ``by_credential`` index (``credential_id``, ``jti``) to end the tokens of a
revoked API key, and TTL on ``purge_at`` (a day after the token's ``exp``). A record holds
ids and times only, never the token. The mint writes it in its one transaction; the exchange
sets ``first_used_at`` once (with a ``first_use`` audit entry, in one transaction through
:mod:`aws_json`: the exchange does not import boto3); revocation sets ``revoked_at``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from preview_tokens.control_plane.audit import VIEWER, AuditEntry, AuditEvent, embedding_origin
from preview_tokens.keys.aws_json import AwsJsonClient, AwsServiceError
from preview_tokens.keys.tokens import PreviewClaims
from preview_tokens.observability import logger
from preview_tokens.settings import AuditSettings

CREDENTIAL_INDEX = "by_credential"
PURGE_AFTER_EXPIRY_SECONDS = 86_400


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch_iso(seconds: int) -> str:
    return iso(datetime.fromtimestamp(seconds, UTC))


def token_record_item(claims: PreviewClaims, created_by: str, created_at: datetime) -> dict[str, Any]:
    item: dict[str, Any] = {
        "sandbox_id": {"S": claims.sandbox_id},
        "jti": {"S": claims.token_id},
        "tenant_id": {"S": claims.tenant_id},
        "scope": {"S": claims.scope.value},
        "iat": {"N": str(claims.issued_at)},
        "exp": {"N": str(claims.expires_at)},
        "created_at": {"S": iso(created_at)},
        "created_by": {"S": created_by},
        "purge_at": {"N": str(claims.expires_at + PURGE_AFTER_EXPIRY_SECONDS)},
    }
    if claims.credential_id:
        item["credential_id"] = {"S": claims.credential_id}
    return item


@dataclass(frozen=True)
class TokenRecord:
    token_id: str
    sandbox_id: str
    tenant_id: str
    scope: str
    issued_at: int
    expires_at: int
    created_at: str
    created_by: str
    credential_id: str
    first_used_at: str | None
    revoked_at: str | None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> TokenRecord:
        return cls(
            token_id=item["jti"]["S"],
            sandbox_id=item["sandbox_id"]["S"],
            tenant_id=item["tenant_id"]["S"],
            scope=item["scope"]["S"],
            issued_at=int(item["iat"]["N"]),
            expires_at=int(item["exp"]["N"]),
            created_at=item["created_at"]["S"],
            created_by=item["created_by"]["S"],
            credential_id=item.get("credential_id", {}).get("S", ""),
            first_used_at=item.get("first_used_at", {}).get("S"),
            revoked_at=item.get("revoked_at", {}).get("S"),
        )

    def as_listed(self) -> dict[str, object]:
        """The token as ``GET /api/v1/sandboxes/{id}/preview-tokens`` lists it (never the token)."""
        return {
            "id": self.token_id,
            "scope": self.scope,
            "expires_at": epoch_iso(self.expires_at),
            "created_at": self.created_at,
            "created_by": self.created_by,
            "first_used_at": self.first_used_at,
        }


class FirstUseRecorder:
    """Marks a token's first exchange on its record and in the audit trail, once."""

    def __init__(self, tokens_table: str, audit: AuditSettings, client: AwsJsonClient | None = None) -> None:
        self._tokens_table = tokens_table
        self._audit = audit
        self._client = client

    def record(self, claims: PreviewClaims, origin_header: str | None, request_id: str) -> None:
        """Never raises: a failed write is logged, the preview still opens (audit is not a gate)."""
        now = datetime.now(UTC)
        entry = AuditEntry.of_token(
            AuditEvent.FIRST_USE,
            claims,
            VIEWER,
            request_id,
            at=now,
            credential_id=claims.credential_id or None,
            origin=embedding_origin(origin_header),
        )
        payload = {
            "TransactItems": [
                {
                    "Update": {
                        "TableName": self._tokens_table,
                        "Key": {"sandbox_id": {"S": claims.sandbox_id}, "jti": {"S": claims.token_id}},
                        "UpdateExpression": "SET first_used_at = :now",
                        "ConditionExpression": (
                            "attribute_exists(jti) AND attribute_not_exists(first_used_at)"
                        ),
                        "ExpressionAttributeValues": {":now": {"S": iso(now)}},
                    }
                },
                {"Put": {"TableName": self._audit.table, "Item": entry.to_item(self._audit.retention_days)}},
            ]
        }
        try:
            client = self._client = self._client or AwsJsonClient("dynamodb")
            client.call("TransactWriteItems", payload)
        except AwsServiceError as error:
            if error.code == "TransactionCanceledException":
                return  # used before (the usual case of a reload), or minted without a record
            logger.warning("first use not recorded", extra={"error_code": error.code})
