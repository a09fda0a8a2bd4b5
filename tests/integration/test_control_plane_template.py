"""The control plane as template.yaml deploys it: routes, least privilege, the master key, outputs."""

from __future__ import annotations

from typing import Any

import pytest
from preview_tokens.data_plane.origin_assertion import ORIGIN_KEY_PURPOSE
from preview_tokens.keys.signing_keys import ENCRYPTION_PURPOSE

from tests.support.template import cloudformation, sam_template

PURPOSE_CONDITION = {"StringEquals": {"kms:EncryptionContext:purpose": ENCRYPTION_PURPOSE}}


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    found: dict[str, Any] = cloudformation()["Resources"]
    return found


def test_the_control_plane_routes_are_the_specs_and_invoke_the_mint_function(
    resources: dict[str, Any],
) -> None:
    paths = resources["ControlPlaneApi"]["Properties"]["Body"]["paths"]
    routes = {(path, method) for path, methods in paths.items() for method in methods}
    assert routes == {
        ("/api/v1/sandboxes/{id}/preview-token", "post"),
        ("/api/v1/preview-tokens/revoke", "post"),
        ("/api/v1/sandboxes/{id}/preview-tokens", "delete"),
        ("/api/v1/sandboxes/{id}/preview-tokens", "get"),
        ("/api/v1/sandboxes/{id}/preview-tokens/{token_id}", "delete"),
        ("/api/v1/openapi.json", "get"),
        ("/api/v1/origin-keys", "get"),
    }
    for path, method in routes:
        integration = paths[path][method]["x-amazon-apigateway-integration"]
        assert integration["type"] == "aws_proxy"
        assert "MintFunction.Arn" in str(integration["uri"])


def test_the_origin_key_set_is_a_get_served_by_the_mint_function(resources: dict[str, Any]) -> None:
    operation = resources["ControlPlaneApi"]["Properties"]["Body"]["paths"]["/api/v1/origin-keys"]
    assert set(operation) == {"get"}
    integration = operation["get"]["x-amazon-apigateway-integration"]
    assert integration["type"] == "aws_proxy"
    assert "MintFunction.Arn" in str(integration["uri"])


def test_the_mint_function_may_only_read_what_it_reads(resources: dict[str, Any]) -> None:
    role = resources[resources["MintFunction"]["Properties"]["Role"]["Fn::GetAtt"][0]]["Properties"]
    statements = [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]

    granted = [(s["Effect"], s["Action"], s["Resource"], s.get("Condition")) for s in statements]

    def arns(*tables: str) -> list[dict[str, list[str]]]:
        return [{"Fn::GetAtt": [table, "Arn"]} for table in tables]

    assert granted == [
        (
            "Allow",
            ["dynamodb:GetItem", "dynamodb:BatchGetItem"],
            arns("TenantsTable", "ApiKeysTable", "SandboxesTable"),
            None,
        ),
        ("Allow", "dynamodb:ConditionCheckItem", {"Fn::GetAtt": ["TenantsTable", "Arn"]}, None),
        (
            "Allow",
            "dynamodb:UpdateItem",
            arns("MintCountersTable", "PreviewTokensTable", "SandboxesTable"),
            None,
        ),
        ("Allow", "dynamodb:PutItem", arns("PreviewTokensTable", "RevocationsTable", "AuditTable"), None),
        (
            "Allow",
            ["dynamodb:Query", "dynamodb:GetItem"],
            {"Fn::GetAtt": ["PreviewTokensTable", "Arn"]},
            None,
        ),
        ("Allow", "dynamodb:Query", {"Fn::GetAtt": ["SigningKeysTable", "Arn"]}, None),
        ("Allow", "kms:Decrypt", {"Fn::GetAtt": ["SigningKeyMasterKey", "Arn"]}, PURPOSE_CONDITION),
    ]


def test_the_master_key_refuses_any_use_without_the_preview_signing_context(
    resources: dict[str, Any],
) -> None:
    key = resources["SigningKeyMasterKey"]["Properties"]
    deny = [s for s in key["KeyPolicy"]["Statement"] if s["Effect"] == "Deny"]
    assert deny == [
        {
            "Sid": "DenyUseWithoutPreviewContext",
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext"],
            "Resource": "*",
            "Condition": {
                "StringNotEquals": {"kms:EncryptionContext:purpose": [ENCRYPTION_PURPOSE, ORIGIN_KEY_PURPOSE]}
            },
        }
    ]
    assert key["EnableKeyRotation"] is True


def test_the_mint_function_gets_every_setting_it_reads(resources: dict[str, Any]) -> None:
    variables = set(resources["MintFunction"]["Properties"]["Environment"]["Variables"])
    assert {
        "TENANTS_TABLE", "API_KEYS_TABLE", "SANDBOXES_TABLE", "SIGNING_KEYS_TABLE", "PREVIEW_DOMAIN",
        "JWT_ISSUER", "JWT_AUDIENCE", "JWT_JWKS_URL", "JWT_TENANT_CLAIM", "PREVIEW_TOKENS_TABLE",
        "MINT_COUNTERS_TABLE", "MINT_RATE_LIMIT_PER_MINUTE", "AUDIT_TABLE", "AUDIT_RETENTION_DAYS",
        "REVOCATIONS_TABLE",
    } <= variables  # fmt: skip


def test_outputs_give_the_api_url_the_tables_and_the_key() -> None:
    outputs = set(sam_template()["Outputs"])
    assert {
        "ControlPlaneApiUrl", "TenantsTableName", "ApiKeysTableName", "SandboxesTableName",
        "SigningKeysTableName", "SigningKeyMasterKeyArn", "PreviewTokensTableName", "RevocationsTableName",
        "AuditTableName", "AuditRetentionDays",
    } <= outputs  # fmt: skip


def test_revocation_audit_and_counter_tables_expire_their_items_by_ttl(resources: dict[str, Any]) -> None:
    ttl = {
        table: resources[table]["Properties"]["TimeToLiveSpecification"]
        for table in ("PreviewTokensTable", "RevocationsTable", "AuditTable", "MintCountersTable")
    }
    assert ttl == {
        "PreviewTokensTable": {"AttributeName": "purge_at", "Enabled": True},
        "RevocationsTable": {"AttributeName": "expires_at", "Enabled": True},
        "AuditTable": {"AttributeName": "purge_at", "Enabled": True},
        "MintCountersTable": {"AttributeName": "purge_at", "Enabled": True},
    }
