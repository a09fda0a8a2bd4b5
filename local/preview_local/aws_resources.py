"""Creating the template's tables and KMS key on an AWS endpoint (a moto server locally)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3

from preview_local.cfn_template import project_template, table_definitions

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kms import KMSClient

TABLE_ENV = {
    "TenantsTable": "TENANTS_TABLE",
    "ApiKeysTable": "API_KEYS_TABLE",
    "SandboxesTable": "SANDBOXES_TABLE",
    "SigningKeysTable": "SIGNING_KEYS_TABLE",
    "PreviewTokensTable": "PREVIEW_TOKENS_TABLE",
    "RevocationsTable": "REVOCATIONS_TABLE",
    "AuditTable": "AUDIT_TABLE",
    "MintCountersTable": "MINT_COUNTERS_TABLE",
}
KMS_ALIAS = "alias/preview-local-signing"


@dataclass(frozen=True)
class LocalResources:
    """Names of what :func:`ensure_resources` created, as the functions' environment wants them."""

    tables: dict[str, str]
    kms_key_id: str

    def environment(self) -> dict[str, str]:
        return {TABLE_ENV[logical_id]: name for logical_id, name in self.tables.items()}


def ensure_resources(
    prefix: str = "preview-local",
    dynamodb: DynamoDBClient | None = None,
    kms: KMSClient | None = None,
) -> LocalResources:
    """Create (idempotently) every table of ``template.yaml`` and the signing master key."""
    dynamodb = dynamodb or boto3.client("dynamodb")
    kms = kms or boto3.client("kms")
    existing = set(dynamodb.list_tables()["TableNames"])
    tables: dict[str, str] = {}
    for logical_id, definition in table_definitions(project_template()).items():
        name = f"{prefix}-{logical_id}"
        if name not in existing:
            dynamodb.create_table(TableName=name, **definition)
        tables[logical_id] = name
    alias = f"{KMS_ALIAS}-{prefix}" if prefix != "preview-local" else KMS_ALIAS
    aliases = {entry["AliasName"]: entry.get("TargetKeyId", "") for entry in kms.list_aliases()["Aliases"]}
    key_id = aliases.get(alias)
    if not key_id:
        key_id = kms.create_key(Description="preview-tokens local signing master key")["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    return LocalResources(tables=tables, kms_key_id=key_id)
