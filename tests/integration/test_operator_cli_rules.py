"""Operator CLI rules that need no running stack: ``preview-tokens`` in-process against moto.

``origin-key retire`` refuses to break live sessions: a key may have signed the assertion of a
session that lives up to 24 h (the longest token) after its successor took over (at the next key
refresh, at most 1 h). The clock is not simulated: the successor's creation time is moved back
in the table, as if the rotation had happened that long ago.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from preview_tokens.data_plane.origin_assertion import ORIGIN_KEY_SET
from preview_tokens.operator.operator_cli import main, origin_key_retirable_at

from tests.support.deployment import Deployment


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    """``preview-tokens ARGS``: exit code, JSON output (or None), stderr."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None, err


@pytest.fixture
def master_key(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SIGNING_KEY_MASTER_KEY", deployment.resources.kms_key_id)
    return deployment.resources.kms_key_id


def created_at(deployment: Deployment, kid: str, when: datetime) -> None:
    boto3.client("dynamodb").update_item(
        TableName=deployment.resources.tables["SigningKeysTable"],
        Key={"key_set": {"S": ORIGIN_KEY_SET}, "kid": {"S": kid}},
        UpdateExpression="SET created_at = :at",
        ExpressionAttributeValues={":at": {"S": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}},
    )


def statuses(capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    _, listed, _ = cli(capsys, "origin-key", "list")
    return {row["kid"]: row["status"] for row in listed["keys"]}


def test_origin_key_retire_refuses_a_key_whose_sessions_may_still_be_live(
    deployment: Deployment, master_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    old = deployment.origin_kid
    code, rotated, _ = cli(capsys, "origin-key", "rotate")
    assert code == 0

    # Right after the rotation: refused, saying until when and why
    code, _, err = cli(capsys, "origin-key", "retire", old)
    assert code == 2
    for words in ("until", "unknown_kid", "--force"):
        assert words in err
    # The newest key signs the sessions opened now: refused whatever its age
    code, _, err = cli(capsys, "origin-key", "retire", rotated["kid"])
    assert code == 2
    assert "rotate" in err
    assert statuses(capsys) == {old: "active", rotated["kid"]: "active"}

    # 24 h after the rotation, the key refresh may not have reached every function yet: refused
    created_at(deployment, old, datetime.now(UTC) - timedelta(days=30))
    created_at(deployment, rotated["kid"], datetime.now(UTC) - timedelta(hours=24, minutes=30))
    assert cli(capsys, "origin-key", "retire", old)[0] == 2
    # 25 h after it, every session the old key signed has ended: retired
    created_at(deployment, rotated["kid"], datetime.now(UTC) - timedelta(hours=25, minutes=1))
    assert cli(capsys, "origin-key", "retire", old)[:2] == (0, {"kid": old, "status": "retired"})
    assert statuses(capsys) == {old: "retired", rotated["kid"]: "active"}


def test_origin_key_retire_force_retires_at_once_after_a_leak(
    deployment: Deployment, master_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    leaked = deployment.origin_kid
    assert cli(capsys, "origin-key", "rotate")[0] == 0
    assert cli(capsys, "origin-key", "retire", leaked, "--force")[:2] == (
        0,
        {"kid": leaked, "status": "retired"},
    )
    assert statuses(capsys)[leaked] == "retired"
    assert cli(capsys, "origin-key", "retire", "o-no-such-key")[0] == 2


def test_the_retirable_time_is_the_successors_creation_plus_25_hours() -> None:
    rows = [
        {"kid": "a", "status": "retired", "created_at": "2026-12-01T00:00:00.000000Z"},
        {"kid": "b", "status": "active", "created_at": "2026-12-02T00:00:00.000000Z"},
        {"kid": "c", "status": "active", "created_at": "2026-12-05T06:00:00.000000Z"},
    ]
    assert origin_key_retirable_at(rows, "b") == datetime(2026, 12, 6, 7, tzinfo=UTC)
    assert origin_key_retirable_at(rows, "c") is None  # the newest signs
    assert origin_key_retirable_at(rows, "a") is None  # retired already
