"""Renewal links: the data plane's signed statement that a session continues under a new token.

Signed by the real :class:`OriginAssertionSigner` with in-memory keys, verified by the fleet's real
``preview_origin`` verifier, as in ``test_origin_assertion.py``.
"""

from __future__ import annotations

import dataclasses

import pytest
from preview_origin import AssertionRejectedError, OriginAssertionVerifier
from preview_tokens.data_plane.origin_assertion import OriginAssertionSigner
from preview_tokens.keys.tokens import Scope

from tests.unit.test_origin_assertion import (
    AUDIENCE,
    NOW,
    SANDBOX,
    FakeOriginKeys,
    claims_for,
    signed,
    signer_with,
    verifier,
)

PREVIOUS = claims_for(jti="t-previous", expires_at=NOW + 20)
RENEWED = claims_for(jti="t-renewed", expires_at=NOW + 620)


def a_signer() -> OriginAssertionSigner:
    store = FakeOriginKeys()
    store.add("oa1", "2026-01-01")
    signer, _ = signer_with(store)
    return signer


def test_a_renewal_links_the_previous_token_to_the_new_tokens_assertion() -> None:
    signer = a_signer()
    previous = signer.assertion_for(PREVIOUS)
    new_cookie = signer.assertion_for(RENEWED)

    linked = signer.renewal_link(RENEWED, previous, NOW)

    assert linked is not None
    link, previous_token_id = linked
    assert previous_token_id == "t-previous"
    assert verifier().verify_renewal(link) == ("t-previous", verifier().verify(new_cookie, SANDBOX))


@pytest.mark.parametrize(
    "presented_claims",
    [
        claims_for("sbx-other", jti="t-previous"),
        dataclasses.replace(PREVIOUS, tenant_id="globex"),
        claims_for(jti="t-previous", scope=Scope.INTERACT),
        claims_for(jti="t-previous", expires_at=NOW),
        RENEWED,
    ],
    ids=["another-sandbox", "another-tenant", "another-scope", "expired", "the-same-token"],
)
def test_no_link_from_an_assertion_of_another_session(presented_claims: object) -> None:
    signer = a_signer()
    assert isinstance(presented_claims, type(PREVIOUS))

    assert signer.renewal_link(RENEWED, signer.assertion_for(presented_claims), NOW) is None


def test_no_link_from_an_assertion_that_is_not_ours() -> None:
    signer = a_signer()
    genuine = signer.assertion_for(PREVIOUS)
    header, payload, signature = genuine.split(".")
    tampered = f"{header}.{payload}.{('B' if signature[0] == 'A' else 'A')}{signature[1:]}"

    for presented in (
        tampered,
        signed(PREVIOUS, kid="oa2"),  # a well-formed assertion of a key the data plane does not hold
        signed(PREVIOUS, audience="https://another.example"),
        "not.an.assertion",
        "",
    ):
        assert signer.renewal_link(RENEWED, presented, NOW) is None, presented


def test_a_link_is_never_an_assertion_nor_an_assertion_a_link() -> None:
    signer = a_signer()
    linked = signer.renewal_link(RENEWED, signer.assertion_for(PREVIOUS), NOW)
    assert linked is not None

    with pytest.raises(AssertionRejectedError) as as_assertion:
        verifier().verify(linked[0], SANDBOX)
    with pytest.raises(AssertionRejectedError) as as_link:
        verifier().verify_renewal(signer.assertion_for(RENEWED))

    assert as_assertion.value.reason == "algorithm"
    assert as_link.value.reason == "algorithm"


@pytest.mark.parametrize(
    ("check", "reason"),
    [
        (verifier(now=RENEWED.expires_at + 60), "expired"),  # the new token ended: nothing to carry on to
        (verifier(audience=AUDIENCE + ".other"), "audience"),
    ],
)
def test_a_link_the_fleet_cannot_accept_is_refused(check: OriginAssertionVerifier, reason: str) -> None:
    signer = a_signer()
    linked = signer.renewal_link(RENEWED, signer.assertion_for(PREVIOUS), NOW)
    assert linked is not None

    with pytest.raises(AssertionRejectedError) as rejected:
        check.verify_renewal(linked[0])

    assert rejected.value.reason == reason
