"""API keys (``msk_...``): stored only as a SHA-256 hash, each bound to one tenant and scopes.

Access patterns: get by hash (every authenticated mint); list a tenant's keys and revoke one
by its public ``key_id`` (operator) through the ``by_tenant`` index (``tenant_id``, ``key_id``).
A key has 256 bits of randomness, so a plain SHA-256 is a safe, fast one-way lookup key; the
comparison happens inside DynamoDB's exact-match key lookup, never as a string compare here.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from preview_tokens.keys.dynamodb import DynamoDbRepository, dependency_call

if TYPE_CHECKING:
    pass

API_KEY_PREFIX = "msk_"
PREVIEWS_WRITE = "previews:write"
API_KEY_SCOPES = (PREVIEWS_WRITE,)
"""Every scope an API key can carry (the operator CLI refuses any other)."""
MAX_LABEL_LENGTH = 128
TENANT_INDEX = "by_tenant"


def hash_api_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def generate_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    tenant_id: str
    scopes: frozenset[str]
    revoked: bool
    created_at: str = ""
    """UTC ISO 8601."""
    label: str = ""
    """The operator's note of what the key is for (``api-key create --label``)."""


@dataclass(frozen=True)
class IssuedApiKey:
    """A freshly created key: ``secret`` is shown to the operator once and never stored."""

    key: ApiKey
    secret: str


class ApiKeyRepository(DynamoDbRepository):
    def find_by_secret(self, api_key: str) -> ApiKey | None:
        with dependency_call("GetItem api_keys"):
            item = self.client.get_item(
                TableName=self._table, Key={"key_hash": {"S": hash_api_key(api_key)}}, ConsistentRead=True
            ).get("Item")
        return None if item is None else api_key_from_item(item)

    def create(
        self, tenant_id: str, scopes: Iterable[str], secret: str | None = None, label: str = ""
    ) -> IssuedApiKey:
        """Register a new key. ``secret`` re-registers a key generated earlier (the local stack keeps
        its demo keys across restarts of its in-memory database); by default a new one is generated."""
        if secret is not None and not (secret.startswith(API_KEY_PREFIX) and len(secret) >= 36):
            raise ValueError("an API key is msk_ followed by at least 32 random characters")
        secret = secret or generate_api_key()
        created_at = datetime.now(UTC).isoformat()
        key_id = "key_" + secrets.token_hex(8)
        key = ApiKey(key_id, tenant_id, frozenset(scopes), False, created_at, label[:MAX_LABEL_LENGTH])
        item: dict[str, object] = {
            "key_hash": {"S": hash_api_key(secret)},
            "key_id": {"S": key.key_id},
            "tenant_id": {"S": tenant_id},
            "created_at": {"S": created_at},
        }
        if key.label:
            item["label"] = {"S": key.label}
        if key.scopes:
            item["scopes"] = {"SS": sorted(key.scopes)}
        with dependency_call("PutItem api_keys"):
            self.client.put_item(
                TableName=self._table,
                Item=item,  # type: ignore[arg-type]
                ConditionExpression="attribute_not_exists(key_hash)",
            )
        return IssuedApiKey(key, secret)

    def list_for_tenant(self, tenant_id: str) -> list[ApiKey]:
        keys: list[ApiKey] = []
        with dependency_call("Query api_keys"):
            paginator = self.client.get_paginator("query")
            for page in paginator.paginate(
                TableName=self._table,
                IndexName=TENANT_INDEX,
                KeyConditionExpression="tenant_id = :tenant",
                ExpressionAttributeValues={":tenant": {"S": tenant_id}},
            ):
                keys.extend(api_key_from_item(item) for item in page.get("Items", []))
        return sorted(keys, key=lambda key: (key.created_at, key.key_id))

    def revoke(self, tenant_id: str, key_id: str) -> bool:
        """Revoke the tenant's key ``key_id``; ``False`` if the tenant has no such key.

        Its tokens live on unless revoked too (``token_lifecycle.revoke_api_key``)."""
        with dependency_call("Query api_keys"):
            items = self.client.query(
                TableName=self._table,
                IndexName=TENANT_INDEX,
                KeyConditionExpression="tenant_id = :tenant AND key_id = :key",
                ExpressionAttributeValues={":tenant": {"S": tenant_id}, ":key": {"S": key_id}},
            ).get("Items", [])
        if not items:
            return False
        with dependency_call("UpdateItem api_keys"):
            self.client.update_item(
                TableName=self._table,
                Key={"key_hash": items[0]["key_hash"]},
                UpdateExpression="SET revoked_at = :now",
                ExpressionAttributeValues={":now": {"S": datetime.now(UTC).isoformat()}},
            )
        return True


def api_key_from_item(item: Mapping[str, Any]) -> ApiKey:
    return ApiKey(
        key_id=item["key_id"]["S"],
        tenant_id=item["tenant_id"]["S"],
        scopes=frozenset(item.get("scopes", {}).get("SS", [])),
        revoked="revoked_at" in item,
        created_at=item.get("created_at", {}).get("S", ""),
        label=item.get("label", {}).get("S", ""),
    )
