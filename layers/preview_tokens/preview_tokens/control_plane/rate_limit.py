"""The per-tenant mint rate limit: a global counter per tenant per one-minute window.

The counter is an item of ``MintCountersTable`` keyed ``<tenant_id>#<window start>``, updated
with ``ADD mints 1`` under the condition ``mints < limit`` inside the mint's one
``TransactWriteItems`` (beside the token record and the audit entry): DynamoDB evaluates the
condition and the increment atomically, so the limit holds across every container and under
concurrent mints, and it costs no write of its own. A fixed window: at a window's edge a tenant
can mint up to twice its limit within a few seconds (documented in the README). Items expire by
TTL an hour after their window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

WINDOW_SECONDS = 60
PURGE_AFTER_SECONDS = 3600


@dataclass(frozen=True)
class MintWindow:
    tenant_id: str
    start: int

    @classmethod
    def at(cls, tenant_id: str, now: float) -> MintWindow:
        return cls(tenant_id, int(now // WINDOW_SECONDS) * WINDOW_SECONDS)

    def retry_after(self, now: float) -> int:
        """Whole seconds until the next window opens (at least 1)."""
        return max(1, math.ceil(self.start + WINDOW_SECONDS - now))

    def counter_update(self, table: str, limit: int) -> dict[str, Any]:
        """The ``Update`` of a transaction: count one mint, or fail its condition at the limit."""
        return {
            "Update": {
                "TableName": table,
                "Key": {"counter": {"S": f"{self.tenant_id}#{self.start}"}},
                "UpdateExpression": "ADD mints :one SET purge_at = :purge",
                "ConditionExpression": "attribute_not_exists(mints) OR mints < :limit",
                "ExpressionAttributeValues": {
                    ":one": {"N": "1"},
                    ":limit": {"N": str(limit)},
                    ":purge": {"N": str(self.start + WINDOW_SECONDS + PURGE_AFTER_SECONDS)},
                },
            }
        }
