"""The audit trail: who minted, first used and revoked which preview token, and when.

One item per event in ``AuditTable`` (partition ``tenant_id``, sort key ``at`` = ISO time +
event + a random suffix, so a tenant's trail reads in time order), removed by DynamoDB TTL
(``purge_at``) after the configured retention. An entry holds ids only: tenant, sandbox, the
token's ``jti``, scope and ``exp``, the minting credential's id (an API key's ``key_id`` or
``jwt:`` + a JWT's ``sub``), who acted, the request id, and for a first use the embedding page's origin
(scheme, host and port only). Never a token, a key or a cookie: nothing here is a credential.

Standard library only (the exchange writes first uses without boto3); the items are
DynamoDB's attribute-value JSON, the same for boto3 and :mod:`aws_json`.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from preview_tokens.keys.tokens import PreviewClaims

OPERATOR = "operator"
VIEWER = "viewer"
MAX_ORIGIN_LENGTH = 200


class AuditEvent(StrEnum):
    MINT = "mint"
    FIRST_USE = "first_use"
    REVOKE = "revoke"


def embedding_origin(value: str | None) -> str | None:
    """``scheme://host[:port]`` of an ``Origin`` or ``Referer`` value; never its path or query."""
    if not value:
        return None
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    origin = f"{parts.scheme}://{parts.hostname}" + (f":{port}" if port else "")
    return origin if len(origin) <= MAX_ORIGIN_LENGTH and origin.isascii() else None


@dataclass(frozen=True)
class AuditEntry:
    event: AuditEvent
    tenant_id: str
    actor: str
    request_id: str
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    sandbox_id: str | None = None
    token_id: str | None = None
    scope: str | None = None
    token_expires_at: int | None = None
    credential_id: str | None = None
    """The credential that minted the token (an API key's ``key_id``, or ``jwt:`` + a JWT's ``sub``)."""
    origin: str | None = None
    revoked: str | None = None
    """For a revocation: what was revoked (``token``, ``sandbox``, ``tenant``, ``credential``)."""

    @classmethod
    def of_token(
        cls, event: AuditEvent, claims: PreviewClaims, actor: str, request_id: str, **details: Any
    ) -> AuditEntry:
        """An entry about one token: its tenant, sandbox, ``jti``, scope and ``exp``, plus ``details``."""
        return cls(
            event,
            claims.tenant_id,
            actor,
            request_id,
            sandbox_id=claims.sandbox_id,
            token_id=claims.token_id,
            scope=claims.scope.value,
            token_expires_at=claims.expires_at,
            **details,
        )

    def to_item(self, retention_days: int) -> dict[str, Any]:
        at = self.at.astimezone(UTC)
        item: dict[str, Any] = {
            "tenant_id": {"S": self.tenant_id},
            "at": {"S": f"{at.isoformat(timespec='milliseconds')}#{self.event.value}#{secrets.token_hex(4)}"},
            "event": {"S": self.event.value},
            "actor": {"S": self.actor},
            "request_id": {"S": self.request_id},
            "purge_at": {"N": str(int(at.timestamp()) + retention_days * 86_400)},
        }
        optional = {
            "sandbox_id": self.sandbox_id,
            "jti": self.token_id,
            "scope": self.scope,
            "credential_id": self.credential_id,
            "origin": self.origin,
            "revoked": self.revoked,
        }
        item.update({name: {"S": value} for name, value in optional.items() if value})
        if self.token_expires_at is not None:
            item["exp"] = {"N": str(self.token_expires_at)}
        return item

    @staticmethod
    def item_as_json(item: Mapping[str, Any]) -> dict[str, object]:
        """An item as the operator CLI prints it: every time in one format, UTC ISO 8601 with
        milliseconds and a ``Z`` (``at``; the token's ``exp`` as ``token_expires_at``)."""
        at = datetime.fromisoformat(item["at"]["S"].split("#", 1)[0])
        printed: dict[str, object] = {"at": utc_iso(at)}
        for name, value in sorted(item.items()):
            if name in ("at", "purge_at"):
                continue
            if name == "exp":
                printed["token_expires_at"] = utc_iso(datetime.fromtimestamp(int(value["N"]), UTC))
                continue
            printed[name] = int(value["N"]) if "N" in value else value.get("S")
        return printed


def utc_iso(moment: datetime) -> str:
    """``2026-12-07T01:02:03.456Z``: the one time format of the audit trail as printed."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class AuditTrail:
    """Reads a tenant's trail (operator CLI). Writes ride in the callers' own transactions."""

    def __init__(self, table: str, client: DynamoDBClient) -> None:
        self._table = table
        self._client = client

    def list(
        self,
        tenant_id: str,
        sandbox_id: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[dict[str, object]]:
        """The tenant's entries, oldest first: from ``since`` on (inclusive), and only the ``limit``
        most recent of those when a limit is given."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "tenant_id = :tenant",
            "ExpressionAttributeValues": {":tenant": {"S": tenant_id}},
            "ScanIndexForward": limit is None,
        }
        if since is not None:
            request["KeyConditionExpression"] += " AND #at >= :since"
            request["ExpressionAttributeNames"] = {"#at": "at"}
            request["ExpressionAttributeValues"][":since"] = {
                "S": since.astimezone(UTC).isoformat(timespec="milliseconds")
            }
        if sandbox_id:
            request["FilterExpression"] = "sandbox_id = :sandbox"
            request["ExpressionAttributeValues"][":sandbox"] = {"S": sandbox_id}
        entries: list[dict[str, object]] = []
        for page in self._client.get_paginator("query").paginate(**request):
            entries.extend(AuditEntry.item_as_json(item) for item in page.get("Items", []))
            if limit is not None and len(entries) >= limit:
                break
        if limit is not None:
            entries = entries[:limit][::-1]
        return entries
