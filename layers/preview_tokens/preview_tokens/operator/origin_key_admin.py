"""Operator actions on origin assertion keys: create (or rotate to) a key, retire one, list, JWKS.

A new key's private part is 32 bytes from KMS ``GenerateDataKey`` under the stack's master key
(encryption context :func:`origin_assertion.origin_key_context`): the Ed25519 seed. Its public
key is derived at once and stored in clear beside the ciphertext (the JWKS serves it); the
plaintext seed is dropped and never printed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3

from preview_tokens.data_plane.origin_assertion import (
    ORIGIN_KEY_BYTES,
    ORIGIN_KEY_SET,
    PublishedOriginKey,
    new_origin_kid,
    origin_jwks,
    origin_key_context,
    public_key_of,
    published_origin_keys,
)
from preview_tokens.keys.signing_keys import ACTIVE
from preview_tokens.operator.signing_key_admin import mark_retired

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kms import KMSClient


class OriginKeyAdmin:
    def __init__(
        self, table: str, dynamodb: DynamoDBClient | None = None, kms: KMSClient | None = None
    ) -> None:
        self._table = table
        self._dynamodb = dynamodb or boto3.client("dynamodb")
        self._kms = kms  # created on first use: serving the JWKS needs no KMS client

    @property
    def kms(self) -> KMSClient:
        self._kms = self._kms or boto3.client("kms")
        return self._kms

    def create(self, kms_key_id: str) -> dict[str, str]:
        """Add a key: published at once, signing from the functions' next key refresh."""
        kid = new_origin_kid()
        generated = self.kms.generate_data_key(
            KeyId=kms_key_id, NumberOfBytes=ORIGIN_KEY_BYTES, EncryptionContext=origin_key_context(kid)
        )
        public_key = public_key_of(generated["Plaintext"])
        ciphertext = generated["CiphertextBlob"]
        del generated  # drops the private key: only its ciphertext is kept
        created_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self._dynamodb.put_item(
            TableName=self._table,
            Item={
                "key_set": {"S": ORIGIN_KEY_SET},
                "kid": {"S": kid},
                "ciphertext": {"B": ciphertext},
                "public_key": {"S": public_key},
                "status": {"S": ACTIVE},
                "created_at": {"S": created_at},
            },
            ConditionExpression="attribute_not_exists(kid)",
        )
        return {"kid": kid, "status": ACTIVE, "created_at": created_at, "public_key": public_key}

    def retire(self, kid: str) -> bool:
        """Stop signing with ``kid`` and stop publishing it; ``False`` if there is no such key."""
        return mark_retired(self._dynamodb, self._table, ORIGIN_KEY_SET, kid)

    def rows(self) -> list[dict[str, str]]:
        """Every origin key, oldest first: kid, status, created_at."""
        items = self._items()
        rows = [
            {"kid": item["kid"]["S"], "status": item["status"]["S"], "created_at": item["created_at"]["S"]}
            for item in items
        ]
        return sorted(rows, key=lambda row: (row["created_at"], row["kid"]))

    def active(self) -> list[PublishedOriginKey]:
        return published_origin_keys(self._items())

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """What ``GET /api/v1/origin-keys`` serves: the active keys' public halves."""
        return origin_jwks(self.active())

    def _items(self) -> list[dict[str, Any]]:
        paginator = self._dynamodb.get_paginator("query")
        items: list[dict[str, Any]] = []
        for page in paginator.paginate(
            TableName=self._table,
            KeyConditionExpression="key_set = :key_set",
            ExpressionAttributeValues={":key_set": {"S": ORIGIN_KEY_SET}},
            ConsistentRead=True,
        ):
            items.extend(page.get("Items", []))
        return items
