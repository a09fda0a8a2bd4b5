"""The real feed: a revocation the control plane writes to RevocationsTable (moto) closes the ingress."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import boto3
import pytest
from preview_ingress.revocations import RevocationWatch
from preview_local.aws_resources import ensure_resources
from preview_local.moto_aws import MotoAws
from preview_origin.verifier import OriginAssertion
from preview_tokens.control_plane.revocations import Revocation, RevocationFeed, RevocationKind

from tests.ingress.conftest import SANDBOX, Ingress, Sandbox, assertion, cloudfront, renewal_link, verifier
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


def test_renewal_links_written_to_the_table_are_read_verified_and_followed_as_a_chain(
    revocations_table: str,
) -> None:
    feed = RevocationFeed(revocations_table)
    now = time.time()
    first = verifier().verify(assertion(jti="tok-a", expires_in=60), SANDBOX)
    feed.record_renewal(renewal_link("tok-a", jti="tok-b", expires_in=120), "tok-a", int(now) + 120, now)
    feed.record_renewal(renewal_link("tok-b", jti="tok-c", expires_in=180), "tok-b", int(now) + 180, now)
    feed.record_renewal(renewal_link("tok-x", jti="tok-y", seed=bytes(32)), "tok-x", int(now) + 600, now)
    verified: list[str] = []

    def verify(link: str) -> tuple[str, OriginAssertion]:
        verified.append(link)
        return verifier().verify_renewal(link)

    watch = RevocationWatch(feed, 1.0, 10.0, renewal_verifier=verify)

    asyncio.run(watch.poll_once())
    asyncio.run(watch.poll_once())  # reads the same links again (the feed's overlap)

    at_first_end = watch.renewed(first, now + 61)
    assert at_first_end is not None
    assert at_first_end.token_id == "tok-c"  # the session's latest token
    assert watch.renewed(first, now + 200) is None  # past the last token of the chain
    assert watch.why_refused(first) is None
    assert len(verified) == 3  # each link verified once, the refused one included
