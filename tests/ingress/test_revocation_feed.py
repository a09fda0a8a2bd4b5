"""The real feed: a revocation the control plane writes to RevocationsTable (moto) closes the ingress."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import boto3
import pytest
from preview_local.aws_resources import ensure_resources
from preview_local.moto_aws import MotoAws
from preview_tokens.control_plane.revocations import Revocation, RevocationFeed, RevocationKind

from tests.ingress.conftest import SANDBOX, Ingress, Sandbox, assertion, cloudfront
from tests.ingress.test_admission import fetch

GENEROUS_SECONDS = 15.0


@pytest.fixture(scope="module")
def moto_aws() -> Iterator[MotoAws]:
    aws = MotoAws().start()
    yield aws
    aws.stop()


@pytest.fixture
def revocations_table(moto_aws: MotoAws, monkeypatch: pytest.MonkeyPatch) -> str:
    moto_aws.reset()
    for name, value in moto_aws.environment().items():
        monkeypatch.setenv(name, value)
    return ensure_resources().environment()["REVOCATIONS_TABLE"]


def test_a_token_revoked_in_the_table_is_refused_within_a_poll(
    revocations_table: str, make_ingress: Callable[..., Ingress], sandbox: Sandbox
) -> None:
    ingress = make_ingress(
        upstream=sandbox.url, sandbox_id=SANDBOX, revocation_feed=RevocationFeed(revocations_table)
    )
    token = assertion(jti="tok-in-table")
    assert fetch("GET", f"{ingress.url}/echo", cloudfront(token)).status == 200

    now = time.time()
    entry = Revocation(RevocationKind.TOKEN, "tok-in-table", int(now) + 600, int(now * 1000))
    boto3.client("dynamodb").put_item(TableName=revocations_table, Item=entry.to_item())

    deadline = time.monotonic() + GENEROUS_SECONDS
    status = 200
    while status == 200 and time.monotonic() < deadline:
        status = fetch("GET", f"{ingress.url}/echo", cloudfront(token)).status
    assert status == 403
    assert fetch("GET", f"{ingress.url}/echo", cloudfront(assertion(jti="another-token"))).status == 200
