"""Tenants: the owners of sandboxes and credentials. Access pattern: get by ``tenant_id``.

A tenant item also keeps the origins that may frame the tenant's previews (``frame_ancestors``,
a list; absent = the stack's ``FrameAncestors`` default), which the edge reads from the edge store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from preview_tokens.dynamodb import default_client, dependency_call

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

ACTIVE = "active"
DISABLED = "disabled"


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    name: str
    status: str
    frame_ancestors: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return self.status == ACTIVE


class TenantRepository:
    def __init__(self, table: str, client: DynamoDBClient | None = None) -> None:
        self._table = table
        self._client = client

    @property
    def client(self) -> DynamoDBClient:
        self._client = self._client or default_client()
        return self._client

    def get(self, tenant_id: str) -> Tenant | None:
        with dependency_call("GetItem tenants"):
            item = self.client.get_item(
                TableName=self._table, Key={"tenant_id": {"S": tenant_id}}, ConsistentRead=True
            ).get("Item")
        if item is None:
            return None
        return Tenant(
            item["tenant_id"]["S"],
            item.get("name", {}).get("S", ""),
            item["status"]["S"],
            tuple(value["S"] for value in item.get("frame_ancestors", {}).get("L", [])),
        )

    def put(self, tenant_id: str, name: str, status: str = ACTIVE) -> Tenant:
        """Create or update a tenant's name and status; what else the item holds is kept."""
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
        return Tenant(
            tenant_id, name, status, tuple(v["S"] for v in item.get("frame_ancestors", {}).get("L", []))
        )

    def set_frame_ancestors(self, tenant_id: str, origins: tuple[str, ...]) -> bool:
        """Declare (or, with no origins, clear) who may frame the tenant's previews; False: no tenant."""
        values: dict[str, AttributeValueTypeDef] = {":now": {"S": datetime.now(UTC).isoformat()}}
        if origins:
            update = "SET frame_ancestors = :origins, updated_at = :now"
            values[":origins"] = {"L": [{"S": origin} for origin in origins]}
        else:
            update = "REMOVE frame_ancestors SET updated_at = :now"
        with dependency_call("UpdateItem tenants"):
            try:
                self.client.update_item(
                    TableName=self._table,
                    Key={"tenant_id": {"S": tenant_id}},
                    UpdateExpression=update,
                    ConditionExpression="attribute_exists(tenant_id)",
                    ExpressionAttributeValues=values,
                )
            except self.client.exceptions.ConditionalCheckFailedException:
                return False
        return True
