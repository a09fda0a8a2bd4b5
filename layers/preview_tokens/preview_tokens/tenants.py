"""Tenants: the owners of sandboxes and credentials. Access pattern: get by ``tenant_id``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from preview_tokens.dynamodb import default_client, dependency_call

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

ACTIVE = "active"
DISABLED = "disabled"


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    name: str
    status: str

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
        return Tenant(item["tenant_id"]["S"], item.get("name", {}).get("S", ""), item["status"]["S"])

    def put(self, tenant_id: str, name: str, status: str = ACTIVE) -> Tenant:
        with dependency_call("PutItem tenants"):
            self.client.put_item(
                TableName=self._table,
                Item={
                    "tenant_id": {"S": tenant_id},
                    "name": {"S": name},
                    "status": {"S": status},
                    "updated_at": {"S": datetime.now(UTC).isoformat()},
                },
            )
        return Tenant(tenant_id, name, status)
