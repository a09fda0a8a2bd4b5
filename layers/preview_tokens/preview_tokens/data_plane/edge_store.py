"""The edge store: what CloudFront Functions read at the edge, one ``AWS::CloudFront::KeyValueStore``.

Keys are namespaced by what they hold (values are strings, as the store holds them):

* ``key.<kid>`` - an HS256 signing key, base64url without padding; present only while the key
  verifies (``signing-key create|rotate`` put it, ``retire`` deletes it).
* ``hs.<header segment>`` - the same key again, under the header segment every token it signs
  starts with (:func:`~preview_tokens.keys.tokens.header_segment`): the edge function finds a
  token's key without decoding its header. Written and deleted with ``key.<kid>``
  (:func:`publish_signing_key`, :func:`withdraw_signing_key`); a store from before it has only
  ``key.<kid>``, which the function falls back to (``preview-tokens bootstrap`` writes both again).
* ``fa.<tenant_id>`` - the tenant's declared frame ancestors, space-separated origins.
* ``sb.<sandbox_id>`` - the tenant that owns the sandbox (how the viewer-response function finds
  the frame ancestors of a sandbox host without trusting anything the request carries).
* ``rv.``/``rs.``/``rt.`` - revocation entries (owner: the revocation feature).

Two implementations of :class:`EdgeStore`: :class:`CloudFrontKeyValueStore` (boto3
``cloudfront-keyvaluestore``; every write needs the store's current ETag, and botocore signs the
API with SigV4A, which needs ``botocore[crt]``) and :class:`LocalEdgeStore`, a JSON file the local
stack's Python mirrors of the edge functions read. Both enforce the store's limits (key <= 512
bytes, value <= 1 KB), so a value that would not fit at the edge is refused locally too. Values
are never logged: a signing key is a secret.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from preview_tokens.errors import ServiceUnavailableError
from preview_tokens.keys.tokens import header_segment

if TYPE_CHECKING:
    from mypy_boto3_cloudfront_keyvaluestore import CloudFrontKeyValueStoreClient

SIGNING_KEY_PREFIX = "key."
SIGNING_KEY_HEADER_PREFIX = "hs."
FRAME_ANCESTORS_PREFIX = "fa."
SANDBOX_TENANT_PREFIX = "sb."
MAX_KEY_BYTES = 512
MAX_VALUE_BYTES = 1024
# A write races other writers on the store's ETag; after this many conflicts it gives up.
WRITE_ATTEMPTS = 4


class EdgeStoreError(ServiceUnavailableError):
    """The edge store could not be read or written (the CLI reports it; retry the command)."""


class EdgeStoreEntryError(ValueError):
    """A key or value the store cannot hold (too long, empty)."""


class EdgeStore(Protocol):
    def get(self, key: str) -> str | None: ...

    def put(self, key: str, value: str) -> None: ...

    def delete(self, key: str) -> None:
        """Remove ``key``; removing an absent key is not an error."""


def signing_key_entry(kid: str) -> str:
    return SIGNING_KEY_PREFIX + kid


def signing_key_entries(kid: str) -> tuple[str, str]:
    """Every entry that holds the key ``kid``: by its kid, and by its tokens' header segment."""
    return signing_key_entry(kid), SIGNING_KEY_HEADER_PREFIX + header_segment(kid)


def publish_signing_key(store: EdgeStore, kid: str, secret: bytes) -> None:
    """Put the key ``kid`` at the edge (every entry of :func:`signing_key_entries`)."""
    value = encode_signing_key(secret)
    for entry in signing_key_entries(kid):
        store.put(entry, value)


def withdraw_signing_key(store: EdgeStore, kid: str) -> None:
    """Delete the key ``kid`` from the edge (every entry; absent ones are no error)."""
    for entry in reversed(signing_key_entries(kid)):
        store.delete(entry)


def frame_ancestors_entry(tenant_id: str) -> str:
    return FRAME_ANCESTORS_PREFIX + tenant_id


def sandbox_tenant_entry(sandbox_id: str) -> str:
    return SANDBOX_TENANT_PREFIX + sandbox_id


def encode_signing_key(secret: bytes) -> str:
    """The form the edge reads a signing key in: base64url, no padding."""
    return base64.urlsafe_b64encode(secret).rstrip(b"=").decode("ascii")


def check_entry(key: str, value: str | None = None) -> None:
    """Refuse what CloudFront's KeyValueStore would refuse, before anything is written."""
    if not key or len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise EdgeStoreEntryError(f"an edge store key is 1 to {MAX_KEY_BYTES} bytes")
    if value is not None and not 0 < len(value.encode("utf-8")) <= MAX_VALUE_BYTES:
        raise EdgeStoreEntryError(f"an edge store value is 1 to {MAX_VALUE_BYTES} bytes")


class CloudFrontKeyValueStore:
    """The deployed store (``PreviewEdgeStore``), through the ``cloudfront-keyvaluestore`` API.

    Writes are conditional on the store's ETag (``DescribeKeyValueStore`` then ``PutKey`` or
    ``DeleteKey`` with ``IfMatch``); a concurrent writer changes the ETag and the write is retried
    with the new one. CloudFront propagates a write to every edge location within seconds.
    """

    def __init__(self, arn: str, client: CloudFrontKeyValueStoreClient | None = None) -> None:
        self._arn = arn
        self._client = client

    @property
    def client(self) -> CloudFrontKeyValueStoreClient:
        if self._client is None:
            import boto3  # only the operator's process writes the store; keep boto3 off other paths

            self._client = boto3.client("cloudfront-keyvaluestore")
        return self._client

    def get(self, key: str) -> str | None:
        check_entry(key)
        try:
            return self.client.get_key(KvsARN=self._arn, Key=key)["Value"]
        except self.client.exceptions.ResourceNotFoundException:
            return None

    def put(self, key: str, value: str) -> None:
        check_entry(key, value)
        for etag in self._etags():
            try:
                self.client.put_key(KvsARN=self._arn, Key=key, Value=value, IfMatch=etag)
            except self.client.exceptions.ConflictException:
                continue
            return

    def delete(self, key: str) -> None:
        check_entry(key)
        for etag in self._etags():
            try:
                self.client.delete_key(KvsARN=self._arn, Key=key, IfMatch=etag)
            except self.client.exceptions.ResourceNotFoundException:
                return  # already absent: what the caller wants
            except self.client.exceptions.ConflictException:
                continue
            return

    def _etags(self) -> Iterator[str]:
        """The store's current ETag, once per attempt; raises when every attempt conflicted."""
        for _ in range(WRITE_ATTEMPTS):
            yield self.client.describe_key_value_store(KvsARN=self._arn)["ETag"]
        raise EdgeStoreError(f"the edge store kept changing under {WRITE_ATTEMPTS} writes: retry")


class LocalEdgeStore:
    """The local stack's store: one JSON object in a file (owner-only), shared by processes.

    Writers (the operator CLI, the stack's seed) lock a sidecar file and replace the store
    atomically; readers (the Python mirrors of the edge functions) read it on every lookup, so a
    write is seen by the next request, as an edge location sees it within seconds.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock_path = path.with_name(path.name + ".lock")

    @property
    def path(self) -> Path:
        return self._path

    def get(self, key: str) -> str | None:
        check_entry(key)
        return self._entries().get(key)

    def put(self, key: str, value: str) -> None:
        check_entry(key, value)
        with self._locked():
            entries = dict(self._entries())
            entries[key] = value
            self._write(entries)

    def delete(self, key: str) -> None:
        check_entry(key)
        with self._locked():
            entries = dict(self._entries())
            if entries.pop(key, None) is not None:
                self._write(entries)

    def clear(self) -> None:
        """Empty the store (the local stack starts with fresh AWS state, and so with a fresh edge)."""
        with self._locked():
            self._write({})

    def _entries(self) -> dict[str, str]:
        try:
            text = self._path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        try:
            document = json.loads(text or "{}")
        except ValueError:
            document = None
        if not isinstance(document, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in document.items()
        ):
            raise EdgeStoreError(f"{self._path} is not an edge store (a JSON object of strings)")
        return document

    def _write(self, entries: dict[str, str]) -> None:
        partial = self._path.with_name(self._path.name + ".partial")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(entries, handle, indent=1, sort_keys=True)
        partial.replace(self._path)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(self._lock_path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)
