"""``preview-tokens bootstrap`` against moto: first keys, edge keys, fleet settings; idempotent."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import boto3
import pytest
from preview_local.aws_resources import ensure_resources
from preview_local.moto_aws import MotoAws
from preview_tokens.data_plane.edge_store import LocalEdgeStore, signing_key_entry
from preview_tokens.keys.signing_keys import ACTIVE
from preview_tokens.operator import operator_cli
from preview_tokens.operator.bootstrap import bootstrap
from preview_tokens.operator.origin_key_admin import OriginKeyAdmin
from preview_tokens.operator.signing_key_admin import SigningKeyAdmin


@pytest.fixture
def fresh_stack(moto_aws: MotoAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A deployed stack before its first keys: tables and master key, nothing in them."""
    moto_aws.reset()
    for name, value in moto_aws.environment().items():
        monkeypatch.setenv(name, value)
    resources = ensure_resources()
    for name, value in resources.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SIGNING_KEY_MASTER_KEY", resources.kms_key_id)
    monkeypatch.delenv("EDGE_STORE_ARN", raising=False)
    edge = tmp_path / "edge-store.json"
    monkeypatch.setenv(operator_cli.EDGE_STORE_FILE, str(edge))
    return edge


def run_bootstrap(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert operator_cli.main(["bootstrap"]) == 0
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    return document


def signing_keys() -> SigningKeyAdmin:
    return SigningKeyAdmin(os.environ["SIGNING_KEYS_TABLE"], edge_store=None)


def test_the_first_run_creates_both_keys_and_writes_the_edge(
    fresh_stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_bootstrap(capsys)

    kid = result["signing_key"]["kid"]
    assert result["signing_key"]["created"] is True
    assert result["origin_key"]["created"] is True
    assert result["edge_keys_written"] == [kid]
    assert [(k.kid, k.status) for k in signing_keys().list()] == [(kid, ACTIVE)]
    origin = OriginKeyAdmin(os.environ["SIGNING_KEYS_TABLE"]).active()
    assert [key.kid for key in origin] == [result["origin_key"]["kid"]]
    edge_value = LocalEdgeStore(fresh_stack).get(signing_key_entry(kid))
    assert edge_value
    # what to configure on the fleet, and no key material anywhere in the output
    assert result["fleet"]["command"].startswith("preview-ingress ")
    assert "ciphertext" not in json.dumps(result)
    assert edge_value not in json.dumps(result)


def test_a_second_run_creates_nothing_and_repairs_the_edge(
    fresh_stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = run_bootstrap(capsys)
    kid = first["signing_key"]["kid"]
    store = LocalEdgeStore(fresh_stack)
    written = store.get(signing_key_entry(kid))
    store.delete(signing_key_entry(kid))  # an edge store that lost the key

    second = run_bootstrap(capsys)

    assert second["signing_key"] == {"kid": kid, "created": False}
    assert second["origin_key"] == {"kid": first["origin_key"]["kid"], "created": False}
    assert len(signing_keys().list()) == 1
    assert LocalEdgeStore(fresh_stack).get(signing_key_entry(kid)) == written


def test_the_fleet_settings_come_from_the_stack_outputs(fresh_stack: Path) -> None:
    outputs = {
        "OriginKeysUrl": "https://abc.execute-api.eu-west-1.amazonaws.com/v1/api/v1/origin-keys",
        "OriginAssertionAudience": "https://fleet.example.com",
        "RevocationsTableName": "prod-RevocationsTable-1",
        "PreviewIngressSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ingress",
    }
    result = bootstrap(
        {
            "SIGNING_KEYS_TABLE": os.environ["SIGNING_KEYS_TABLE"],
            "SIGNING_KEY_MASTER_KEY": os.environ["SIGNING_KEY_MASTER_KEY"],
        },
        LocalEdgeStore(fresh_stack),
        outputs,
        boto3.client("kms"),
        boto3.client("dynamodb"),
    )

    command = result["fleet"]["command"]
    assert f"--jwks-url {outputs['OriginKeysUrl']}" in command
    assert "--audience https://fleet.example.com" in command
    assert "--revocations-table prod-RevocationsTable-1" in command
    assert "PreviewIngressSecretArn" in result["fleet"]["ingress_secret"]


def test_without_the_stacks_names_it_says_what_is_missing(
    moto_aws: MotoAws,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.delenv("SIGNING_KEYS_TABLE", raising=False)
    monkeypatch.chdir(tmp_path)  # no .local/demo.json to find either
    assert operator_cli.main(["bootstrap"]) == 2
    err = capsys.readouterr().err
    assert "no deployment to act on: pass --stack NAME" in err
