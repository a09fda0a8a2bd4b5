"""Tenants: the owners of sandboxes and credentials. Access pattern: get by ``tenant_id``.

A tenant item also keeps the origins that may frame the tenant's previews (``frame_ancestors``,
a list; absent = the stack's ``FrameAncestors`` default), which the edge reads from the edge store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from preview_tokens.keys.dynamodb import DynamoDbRepository, dependency_call

if TYPE_CHECKING:
    pass

ACTIVE = "active"
DISABLED = "disabled"


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    name: str
    status: str
    frame_ancestors: tuple[str, ...] = ()
    mint_rate_per_minute: int | None = None
    """The operator's override of the default mint rate limit; ``None``: the default applies."""
    tokens_not_before: int = 0
    """Tokens of this tenant issued before this epoch second are revoked (set when disabled)."""

    @property
    def active(self) -> bool:
        return self.status == ACTIVE


class TenantRepository(DynamoDbRepository):
    def get(self, tenant_id: str) -> Tenant | None:
        with dependency_call("GetItem tenants"):
            item = self.client.get_item(
                TableName=self._table, Key={"tenant_id": {"S": tenant_id}}, ConsistentRead=True
            ).get("Item")
        return None if item is None else tenant_from_item(item)

    def put(self, tenant_id: str, name: str, status: str = ACTIVE) -> Tenant:
        """Create or update a tenant's name and status; its other attributes are kept."""
        with dependency_call("UpdateItem tenants"):
            item = self.client.update_item(
                TableName=self._table,
                Key={"tenant_id": {"S": tenant_id}},
                UpdateExpression="SET #name = :name, #status = :status, updated_at = :now",
                ExpressionAttributeNames={"#name": "name", "#status": "status"},
                ExpressionAttributeValues={
                    ":name": {"S": name},
                    ":status": {"S": status},
                    ":now": {"S": datetime.now(UTC).isoformat()},
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
        return tenant_from_item(item)

    def set_frame_ancestors(self, tenant_id: str, origins: tuple[str, ...]) -> bool:
        """Declare (or, with no origins, clear) who may frame the tenant's previews; False: no tenant."""
        values: dict[str, Any] = {":now": {"S": datetime.now(UTC).isoformat()}}
        if origins:
            update = "SET frame_ancestors = :origins, updated_at = :now"
            values[":origins"] = {"L": [{"S": origin} for origin in origins]}
        else:
            update = "REMOVE frame_ancestors SET updated_at = :now"
        return self._update_existing(tenant_id, update, values)

    def set_mint_rate_limit(self, tenant_id: str, per_minute: int | None) -> bool:
        """Override (or, with ``None``, reset to the default) a tenant's mint rate; ``False`` if unknown."""
        update = (
            "SET mint_rate_per_minute = :rate" if per_minute is not None else "REMOVE mint_rate_per_minute"
        )
        values = {":rate": {"N": str(per_minute)}} if per_minute is not None else None
        return self._update_existing(tenant_id, update, values)

    def _update_existing(self, tenant_id: str, update: str, values: dict[str, Any] | None) -> bool:
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": {"tenant_id": {"S": tenant_id}},
            "UpdateExpression": update,
            "ConditionExpression": "attribute_exists(tenant_id)",
        }
        if values:
            request["ExpressionAttributeValues"] = values
        with dependency_call("UpdateItem tenants"):
            try:
                self.client.update_item(**request)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                    return False
                raise
        return True


def tenant_from_item(item: Mapping[str, Any]) -> Tenant:
    rate = item.get("mint_rate_per_minute", {}).get("N")
    return Tenant(
        item["tenant_id"]["S"],
        item.get("name", {}).get("S", ""),
        item["status"]["S"],
        tuple(value["S"] for value in item.get("frame_ancestors", {}).get("L", [])),
        int(rate) if rate is not None else None,
        int(item.get("tokens_not_before", {}).get("N", "0")),
    )
