"""Sandboxes, looked up within the caller's tenant.

Access patterns: get a sandbox by id within a tenant (mint); put and delete by id (operator).
A sandbox id is a DNS label and names the sandbox's preview host, so ids are unique across
tenants: the table's key is ``sandbox_id`` alone, the owning ``tenant_id`` is an attribute
compared on every read, and a put refuses an id another tenant holds. Deleting keeps a
tombstone (``status = deleted``) so the id (and its host) can never pass to another tenant.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from preview_tokens.keys.dynamodb import DynamoDbRepository, dependency_call
from preview_tokens.keys.tokens import SANDBOX_ID_RE

if TYPE_CHECKING:
    pass

RUNNING = "running"
DELETED = "deleted"


class SandboxIdTakenError(Exception):
    """The sandbox id belongs to another tenant."""


@dataclass(frozen=True)
class Sandbox:
    sandbox_id: str
    tenant_id: str
    status: str
    tokens_not_before: int = 0
    """Tokens of this sandbox issued before this epoch second are revoked."""


def sandbox_from_item(item: Mapping[str, Any]) -> Sandbox:
    return Sandbox(
        item["sandbox_id"]["S"],
        item["tenant_id"]["S"],
        item["status"]["S"],
        int(item.get("tokens_not_before", {}).get("N", "0")),
    )


def is_sandbox_id(value: str) -> bool:
    return bool(SANDBOX_ID_RE.match(value))


class SandboxRepository(DynamoDbRepository):
    def get(self, sandbox_id: str) -> Sandbox | None:
        """The sandbox with this id, whatever its tenant and status; ``None`` when absent."""
        if not is_sandbox_id(sandbox_id):
            return None
        with dependency_call("GetItem sandboxes"):
            item = self.client.get_item(
                TableName=self._table, Key={"sandbox_id": {"S": sandbox_id}}, ConsistentRead=True
            ).get("Item")
        return sandbox_from_item(item) if item is not None else None

    def find_in_tenant(self, tenant_id: str, sandbox_id: str) -> Sandbox | None:
        """The tenant's live sandbox with this id, or ``None`` (absent, deleted or not theirs)."""
        sandbox = self.get(sandbox_id)
        if sandbox is None or sandbox.tenant_id != tenant_id or sandbox.status != RUNNING:
            return None
        return sandbox

    def list_for_tenant(self, tenant_id: str) -> list[Sandbox]:
        """The tenant's running sandboxes, by id. A Scan: the table is keyed by sandbox id alone,
        and listing is the operator's occasional command, never on a request's path."""
        sandboxes: list[Sandbox] = []
        with dependency_call("Scan sandboxes"):
            for page in self.client.get_paginator("scan").paginate(
                TableName=self._table,
                FilterExpression="tenant_id = :tenant AND #status = :running",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":tenant": {"S": tenant_id}, ":running": {"S": RUNNING}},
                ConsistentRead=True,
            ):
                sandboxes.extend(sandbox_from_item(item) for item in page.get("Items", []))
        return sorted(sandboxes, key=lambda sandbox: sandbox.sandbox_id)

    def put(self, tenant_id: str, sandbox_id: str) -> Sandbox:
        if not is_sandbox_id(sandbox_id):
            raise ValueError("a sandbox id is a lower-case DNS label: a-z, 0-9 and '-', 1 to 63 long")
        self._put_if_ours(tenant_id, sandbox_id, RUNNING)
        return Sandbox(sandbox_id, tenant_id, RUNNING)

    def delete(self, tenant_id: str, sandbox_id: str) -> bool:
        """Mark the tenant's sandbox deleted; ``False`` if it had no such sandbox."""
        try:
            self._put_if_ours(tenant_id, sandbox_id, DELETED, must_exist=True)
        except SandboxIdTakenError:
            return False
        return True

    def _put_if_ours(self, tenant_id: str, sandbox_id: str, status: str, must_exist: bool = False) -> None:
        condition = "tenant_id = :tenant"
        if not must_exist:
            condition = "attribute_not_exists(sandbox_id) OR " + condition
        # An update, not a put: a sandbox's tokens_not_before (revocation marker) survives it.
        with dependency_call("UpdateItem sandboxes"):
            try:
                self.client.update_item(
                    TableName=self._table,
                    Key={"sandbox_id": {"S": sandbox_id}},
                    UpdateExpression="SET tenant_id = :tenant, #status = :status, updated_at = :now",
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={
                        ":tenant": {"S": tenant_id},
                        ":status": {"S": status},
                        ":now": {"S": datetime.now(UTC).isoformat()},
                    },
                    ConditionExpression=condition,
                )
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                    raise SandboxIdTakenError(sandbox_id) from None
                raise
