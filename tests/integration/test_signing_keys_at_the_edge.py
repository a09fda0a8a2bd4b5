"""Signing keys reach the edge store from the operator's admin actions, against moto (DynamoDB, KMS)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from preview_tokens.data_plane.edge_store import LocalEdgeStore
from preview_tokens.keys.tokens import PreviewClaims, Scope, sign_preview_token
from preview_tokens.operator.signing_key_admin import SigningKeyAdmin

from tests.support.deployment import Deployment


def _decode(text: str | None) -> bytes:
    assert text is not None
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_a_new_key_at_the_edge_is_the_key_the_functions_decrypt_until_retired(
    deployment: Deployment, tmp_path: Path
) -> None:
    store = LocalEdgeStore(tmp_path / "edge.json")
    admin = SigningKeyAdmin(deployment.resources.tables["SigningKeysTable"], edge_store=store)

    key = admin.create(deployment.resources.kms_key_id)

    assert _decode(store.get(f"key.{key.kid}")) == deployment.signing_secret(key.kid)
    # and under the header segment its tokens start with: what the edge function reads first
    claims = PreviewClaims("sbx-a", "acme", "sbx-a.p.example", Scope.READ, 0, 60, "t-1")
    header = sign_preview_token(claims, key.kid, deployment.signing_secret(key.kid))[3:].split(".")[0]
    assert store.get(f"hs.{header}") == store.get(f"key.{key.kid}")
    assert admin.retire(key.kid)
    assert store.get(f"key.{key.kid}") is None
    assert store.get(f"hs.{header}") is None


def test_a_key_that_could_not_be_stored_is_taken_back_from_the_edge(
    deployment: Deployment, tmp_path: Path
) -> None:
    store = LocalEdgeStore(tmp_path / "edge.json")
    admin = SigningKeyAdmin("no-such-table", edge_store=store)

    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        admin.create(deployment.resources.kms_key_id)

    assert store.path.exists(), "the key went to the edge first"
    assert [
        name
        for name in json.loads(store.path.read_text(encoding="utf-8"))
        if name.startswith(("key.", "hs."))
    ] == []
