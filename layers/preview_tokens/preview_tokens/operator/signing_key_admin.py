"""Operator actions on signing keys: create (or rotate to) a new key, retire one, list them.

A new key is a 256-bit KMS data key generated under the master key with the encryption
context of :func:`signing_keys.encryption_context`; only its ciphertext is stored in DynamoDB.
The plaintext returned by ``GenerateDataKey`` goes to one place only, the edge store
(``key.<kid>``, where the CloudFront stream verifier reads it), and is then dropped; it is never
printed or logged. The key reaches the edge before it is stored as active, so no function signs
with a key the edge does not know yet; retiring deletes it from the edge.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import ClientError

from preview_tokens.data_plane.edge_store import EdgeStore, publish_signing_key, withdraw_signing_key
from preview_tokens.keys.signing_keys import (
    ACTIVE,
    KEY_SET,
    RETIRED,
    StoredSigningKey,
    encryption_context,
    new_kid,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kms import KMSClient


class SigningKeyAdmin:
    """``edge_store``: where keys reach the edge; ``None`` only for a deployment without an edge
    (the tests of the functions, the bench), never for the operator CLI."""

    def __init__(
        self,
        table: str,
        dynamodb: DynamoDBClient | None = None,
        kms: KMSClient | None = None,
        *,
        edge_store: EdgeStore | None,
    ) -> None:
        self._table = table
        self._edge_store = edge_store
        self._dynamodb = dynamodb or boto3.client("dynamodb")
        self._kms = kms or boto3.client("kms")

    def create(self, kms_key_id: str) -> StoredSigningKey:
        """Add a key; being the newest, it signs from the next refresh. Older keys keep verifying."""
        kid = new_kid()
        generated = self._kms.generate_data_key(
            KeyId=kms_key_id, KeySpec="AES_256", EncryptionContext=encryption_context(kid)
        )
        ciphertext = generated["CiphertextBlob"]
        if self._edge_store is not None:
            publish_signing_key(self._edge_store, kid, generated["Plaintext"])
        del generated  # drops the plaintext data key: only the ciphertext is kept
        key = StoredSigningKey(
            kid=kid,
            ciphertext=ciphertext,
            status=ACTIVE,
            created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        )
        try:
            self._dynamodb.put_item(
                TableName=self._table,
                Item=key.to_item(),
                ConditionExpression="attribute_not_exists(kid)",
            )
        except BaseException:
            if self._edge_store is not None:
                withdraw_signing_key(self._edge_store, kid)  # never at the edge without being stored
            raise
        return key

    def retire(self, kid: str) -> bool:
        """Stop accepting tokens signed by ``kid``; ``False`` if there is no such key.

        Idempotent: retiring a retired key deletes it from the edge again (a retry after an edge
        store failure)."""
        if not mark_retired(self._dynamodb, self._table, KEY_SET, kid):
            return False
        if self._edge_store is not None:
            withdraw_signing_key(self._edge_store, kid)
        return True

    def list(self) -> list[StoredSigningKey]:
        items = self._dynamodb.query(
            TableName=self._table,
            KeyConditionExpression="key_set = :key_set",
            ExpressionAttributeValues={":key_set": {"S": KEY_SET}},
            ConsistentRead=True,
        ).get("Items", [])
        return sorted(
            (
                StoredSigningKey(
                    kid=item["kid"]["S"],
                    ciphertext=item["ciphertext"]["B"],
                    status=item["status"]["S"],
                    created_at=item["created_at"]["S"],
                )
                for item in items
            ),
            key=lambda key: key.created_at,
        )


def mark_retired(dynamodb: DynamoDBClient, table: str, key_set: str, kid: str) -> bool:
    """Set a stored key's status to retired; ``False`` when the key set has no such ``kid``."""
    try:
        dynamodb.update_item(
            TableName=table,
            Key={"key_set": {"S": key_set}, "kid": {"S": kid}},
            UpdateExpression="SET #status = :retired",
            ConditionExpression="attribute_exists(kid)",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":retired": {"S": RETIRED}},
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise
    return True
