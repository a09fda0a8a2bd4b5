"""Signing keys: KMS data keys whose ciphertext is stored in DynamoDB under a ``kid``.

* An operator creates a key with ``preview-tokens signing-key create`` (KMS
  ``GenerateDataKey`` with the encryption context below; only the ciphertext is stored).
* Every ``active`` key verifies tokens; the newest ``active`` key signs new ones. Rotation
  adds a key, so tokens signed by the previous one keep verifying until they expire.
  ``retire`` marks a key ``retired``: tokens signed by it are refused from the next refresh.
* A function decrypts each key once per cold start (``Decrypt`` with the encryption context,
  which the IAM policy also requires), keeps the plaintext in memory only and re-reads the
  key list every ``SIGNING_KEYS_REFRESH_SECONDS`` to pick up rotations and retirements.

Items use DynamoDB's attribute-value JSON, the same for boto3 and :mod:`aws_json`.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from preview_tokens.keys.aws_json import AwsJsonClient, AwsServiceError

KEY_SET = "preview-token-signing"
ENCRYPTION_PURPOSE = "preview-token-signing"
ACTIVE = "active"
RETIRED = "retired"


# After a failed read of the key store, no new attempt for this long, doubling per failure up to
# RETRY_MAX_SECONDS: during an outage a warm function answers "unavailable" at once instead of
# spending a timeout on every request, and tries again by itself (README "Signing keys").
RETRY_INITIAL_SECONDS = 1.0
RETRY_MAX_SECONDS = 5.0


class SigningKeyUnavailableError(Exception):
    """The signing keys cannot be read or decrypted now (KMS or DynamoDB failing).

    ``retry_after_seconds``: when the key store will be tried again (what ``Retry-After`` says).
    """

    def __init__(self, message: str, retry_after_seconds: float = RETRY_MAX_SECONDS) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class NoSigningKeyError(SigningKeyUnavailableError):
    """No active signing key exists: an operator must create one."""


def encryption_context(kid: str) -> dict[str, str]:
    return {"purpose": ENCRYPTION_PURPOSE, "kid": kid}


def new_kid() -> str:
    return "k" + time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


@dataclass(frozen=True)
class StoredSigningKey:
    kid: str
    ciphertext: bytes = field(repr=False)
    status: str
    created_at: str

    def to_item(self) -> dict[str, Any]:
        return {
            "key_set": {"S": KEY_SET},
            "kid": {"S": self.kid},
            "ciphertext": {"B": self.ciphertext},
            "status": {"S": self.status},
            "created_at": {"S": self.created_at},
        }

    @classmethod
    def from_json_item(cls, item: Mapping[str, Any]) -> StoredSigningKey:
        """From an item as the DynamoDB JSON protocol returns it (binary as base64)."""
        return cls(
            kid=item["kid"]["S"],
            ciphertext=base64.b64decode(item["ciphertext"]["B"]),
            status=item["status"]["S"],
            created_at=item["created_at"]["S"],
        )


@dataclass(frozen=True)
class SigningKey:
    kid: str
    secret: bytes = field(repr=False)


@dataclass(frozen=True)
class KeyRing:
    """The keys valid right now: all of them verify, ``current`` signs."""

    secrets_by_kid: Mapping[str, bytes] = field(repr=False)
    current: SigningKey | None


class SigningKeyStore(Protocol):
    def load(self) -> list[StoredSigningKey]: ...


class KeyDecrypter(Protocol):
    def decrypt(self, ciphertext: bytes, context: Mapping[str, str]) -> bytes: ...


class DynamoDbSigningKeyStore:
    """The keys of one key set (a partition of the signing-keys table): token keys by default."""

    def __init__(self, table: str, client: AwsJsonClient | None = None, key_set: str = KEY_SET) -> None:
        self._table = table
        self._client = client
        self._key_set = key_set

    def load(self) -> list[StoredSigningKey]:
        return [StoredSigningKey.from_json_item(item) for item in self.load_items()]

    def load_items(self) -> list[Mapping[str, Any]]:
        """Every item of the key set, in DynamoDB's attribute-value JSON."""
        client = self._client = self._client or AwsJsonClient("dynamodb")
        request: dict[str, object] = {
            "TableName": self._table,
            "KeyConditionExpression": "key_set = :key_set",
            "ExpressionAttributeValues": {":key_set": {"S": self._key_set}},
            "ConsistentRead": True,
        }
        items: list[Mapping[str, Any]] = []
        while True:
            page = client.call("Query", request)
            found = page.get("Items", [])
            if not isinstance(found, list):
                raise AwsServiceError("dynamodb", "Query", "InvalidResponse")
            items.extend(found)
            if "LastEvaluatedKey" not in page:
                return items
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class KmsKeyDecrypter:
    def __init__(self, client: AwsJsonClient | None = None) -> None:
        self._client = client

    def decrypt(self, ciphertext: bytes, context: Mapping[str, str]) -> bytes:
        client = self._client = self._client or AwsJsonClient("kms")
        response = client.call(
            "Decrypt",
            {"CiphertextBlob": base64.b64encode(ciphertext).decode("ascii"), "EncryptionContext": context},
        )
        plaintext = response.get("Plaintext")
        if not isinstance(plaintext, str):
            raise AwsServiceError("kms", "Decrypt", "InvalidResponse")
        return base64.b64decode(plaintext)


class SigningKeyProvider:
    """Lazily loads the key ring, decrypting each ``kid`` once, refreshing on a timer.

    ``context_for`` is the KMS encryption context of a key set's keys: the token signing keys'
    by default; the origin assertion keys pass theirs (:mod:`origin_assertion`).

    A failed load opens a short circuit: until ``retry_at`` every call fails at once, without
    touching the store; the first call after it tries again. The wait starts at
    :data:`RETRY_INITIAL_SECONDS` and doubles with each consecutive failure up to
    :data:`RETRY_MAX_SECONDS`. A ring that is due for refresh is never used past a failed refresh
    (fail closed: a retired key must not keep verifying because the store is down).
    """

    def __init__(
        self,
        store: SigningKeyStore,
        decrypter: KeyDecrypter,
        refresh_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        context_for: Callable[[str], Mapping[str, str]] = encryption_context,
        on_refresh_failure: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._on_refresh_failure = on_refresh_failure
        self._decrypter = decrypter
        self._context_for = context_for
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._ring: KeyRing | None = None
        self._loaded_at = 0.0
        self._plaintexts: dict[str, bytes] = {}
        self._failures = 0
        self._retry_at = 0.0

    def key_ring(self) -> KeyRing:
        """The current ring; raises :class:`SigningKeyUnavailableError` if it cannot be read."""
        now = self._clock()
        if self._ring is None or now - self._loaded_at >= self._refresh_seconds:
            if now < self._retry_at:
                raise SigningKeyUnavailableError("key store failing; backing off", self._retry_at - now)
            try:
                ring = self._load()
            except SigningKeyUnavailableError as error:
                if self._on_refresh_failure is not None:
                    self._on_refresh_failure()
                self._failures += 1
                wait = min(RETRY_MAX_SECONDS, RETRY_INITIAL_SECONDS * 2 ** (self._failures - 1))
                self._retry_at = self._clock() + wait
                raise SigningKeyUnavailableError(str(error), wait) from None
            self._ring, self._loaded_at = ring, now
            self._failures, self._retry_at = 0, 0.0
        return self._ring

    def signing_key(self) -> SigningKey:
        current = self.key_ring().current
        if current is None:
            raise NoSigningKeyError("no active signing key")
        return current

    def _load(self) -> KeyRing:
        try:
            stored = [key for key in self._store.load() if key.status == ACTIVE]
            for key in stored:
                if key.kid not in self._plaintexts:
                    self._plaintexts[key.kid] = self._decrypter.decrypt(
                        key.ciphertext, self._context_for(key.kid)
                    )
        except AwsServiceError as error:
            raise SigningKeyUnavailableError(str(error)) from None
        except (KeyError, TypeError, ValueError) as error:  # an item not shaped like a signing key
            raise SigningKeyUnavailableError(f"malformed signing key item: {type(error).__name__}") from None
        active = {key.kid: self._plaintexts[key.kid] for key in stored}
        self._plaintexts = dict(active)
        newest = max(stored, key=lambda key: (key.created_at, key.kid), default=None)
        current = SigningKey(newest.kid, active[newest.kid]) if newest else None
        return KeyRing(secrets_by_kid=active, current=current)
