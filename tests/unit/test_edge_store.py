"""The edge store: the local file the local stack reads, and the CloudFront KeyValueStore client.

The CloudFront side runs against botocore's own ``cloudfront-keyvaluestore`` service model: the
Stubber refuses any call or parameter the real API would not take, and the signing test lets
botocore sign a real request (stopped before it is sent) to show the SigV4A it needs.
"""

from __future__ import annotations

import base64
import contextlib
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.stub import Stubber
from preview_tokens.data_plane.edge_store import (
    MAX_VALUE_BYTES,
    WRITE_ATTEMPTS,
    CloudFrontKeyValueStore,
    EdgeStoreEntryError,
    EdgeStoreError,
    LocalEdgeStore,
    encode_signing_key,
)

ARN = "arn:aws:cloudfront::123456789012:key-value-store/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


# ------------------------------------------------------------------------------ local file store


def test_local_store_keeps_entries_across_instances_and_deletes_them(tmp_path: Path) -> None:
    writer = LocalEdgeStore(tmp_path / "edge.json")
    reader = LocalEdgeStore(tmp_path / "edge.json")

    writer.put("fa.acme", "https://app.acme.com")
    writer.put("sb.sbx-1", "acme")
    assert reader.get("fa.acme") == "https://app.acme.com"

    writer.put("fa.acme", "https://*.acme.com")
    writer.delete("sb.sbx-1")
    writer.delete("sb.never-there")  # deleting an absent key is fine
    assert reader.get("fa.acme") == "https://*.acme.com"
    assert reader.get("sb.sbx-1") is None
    assert (tmp_path / "edge.json").stat().st_mode & 0o777 == 0o600


def test_local_store_refuses_what_the_key_value_store_would_refuse(tmp_path: Path) -> None:
    store = LocalEdgeStore(tmp_path / "edge.json")

    with pytest.raises(EdgeStoreEntryError):
        store.put("fa.acme", "x" * (MAX_VALUE_BYTES + 1))
    with pytest.raises(EdgeStoreEntryError):
        store.put("k" * 513, "v")
    with pytest.raises(EdgeStoreEntryError):
        store.put("fa.acme", "")
    assert store.get("fa.acme") is None


def test_a_local_store_that_is_not_a_json_object_of_strings_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "edge.json").write_text('{"fa.acme": 3}', encoding="utf-8")

    with pytest.raises(EdgeStoreError):
        LocalEdgeStore(tmp_path / "edge.json").get("fa.acme")


def test_signing_keys_reach_the_edge_as_unpadded_base64url() -> None:
    secret = bytes(range(250, 256)) + bytes(26)

    encoded = encode_signing_key(secret)

    assert set(encoded) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)) == secret


# ------------------------------------------------------------------------ CloudFront KeyValueStore


@pytest.fixture
def stubbed() -> tuple[CloudFrontKeyValueStore, Stubber]:
    client = boto3.client("cloudfront-keyvaluestore", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.activate()
    return CloudFrontKeyValueStore(ARN, client), stubber


def _describe(stubber: Stubber, etag: str) -> None:
    stubber.add_response(
        "describe_key_value_store",
        {"ItemCount": 1, "TotalSizeInBytes": 10, "KvsARN": ARN, "Created": "2026-01-01", "ETag": etag},
        {"KvsARN": ARN},
    )


def _write(key: str, etag: str, value: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"KvsARN": ARN, "Key": key, "IfMatch": etag}
    if value is not None:
        params["Value"] = value
    return params


def test_a_write_is_conditional_on_the_stores_current_etag(
    stubbed: tuple[CloudFrontKeyValueStore, Stubber],
) -> None:
    store, stubber = stubbed
    _describe(stubber, "etag-1")
    stubber.add_response(
        "put_key",
        {"ItemCount": 2, "TotalSizeInBytes": 20, "ETag": "etag-2"},
        _write("fa.acme", "etag-1", "v"),
    )

    store.put("fa.acme", "v")

    stubber.assert_no_pending_responses()


def test_a_write_that_lost_a_race_is_retried_with_the_new_etag(
    stubbed: tuple[CloudFrontKeyValueStore, Stubber],
) -> None:
    store, stubber = stubbed
    _describe(stubber, "etag-1")
    stubber.add_client_error("put_key", "ConflictException", http_status_code=409)
    _describe(stubber, "etag-2")
    stubber.add_response(
        "put_key",
        {"ItemCount": 2, "TotalSizeInBytes": 20, "ETag": "etag-3"},
        _write("fa.acme", "etag-2", "v"),
    )

    store.put("fa.acme", "v")

    stubber.assert_no_pending_responses()


def test_a_write_that_keeps_conflicting_gives_up_with_an_error(
    stubbed: tuple[CloudFrontKeyValueStore, Stubber],
) -> None:
    store, stubber = stubbed
    for attempt in range(WRITE_ATTEMPTS):
        _describe(stubber, f"etag-{attempt}")
        stubber.add_client_error("delete_key", "ConflictException", http_status_code=409)

    with pytest.raises(EdgeStoreError):
        store.delete("key.k1")


def test_deleting_an_absent_key_succeeds_and_reading_one_gives_none(
    stubbed: tuple[CloudFrontKeyValueStore, Stubber],
) -> None:
    store, stubber = stubbed
    _describe(stubber, "etag-1")
    stubber.add_client_error("delete_key", "ResourceNotFoundException", http_status_code=404)
    stubber.add_client_error("get_key", "ResourceNotFoundException", http_status_code=404)

    store.delete("key.k-retired")
    assert store.get("key.k-retired") is None
    stubber.assert_no_pending_responses()


def test_the_key_value_store_api_is_signed_with_sigv4a_which_needs_the_aws_crt() -> None:
    """What operators must install (botocore[crt]): botocore signs this API with SigV4A."""
    client = boto3.client("cloudfront-keyvaluestore", region_name="us-east-1")
    sent: list[Any] = []

    def capture(request: Any, **_: Any) -> AWSResponse:
        sent.append(request)
        return AWSResponse(request.url, 200, HTTPHeaders(), None)  # answered here: nothing is sent

    client.meta.events.register("before-send.cloudfront-keyvaluestore.GetKey", capture)  # type: ignore[arg-type]
    with contextlib.suppress(Exception):  # the empty answer does not parse; the request is what counts
        client.get_key(KvsARN=ARN, Key="fa.acme")

    (request,) = sent
    assert request.headers["Authorization"].startswith(b"AWS4-ECDSA-P256-SHA256 ")
    assert request.headers["X-Amz-Region-Set"] == b"*"
    assert request.url.startswith("https://123456789012.cloudfront-kvs.global.api.aws/")
