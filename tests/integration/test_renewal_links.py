"""A renewal in place records a renewal link; the fleet reads and verifies it (handlers against moto).

The embed helper renews in a hidden frame that shares the visible preview's cookie jar, so the
exchange's authorizer sees the previous token's origin assertion (``__Host-mp_origin``) beside the
new ``?mt=``. It records a link in the revocation table's ``renewals`` feed, which the fleet ingress
reads to keep that token's streams open until the new ``exp``.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from preview_tokens.control_plane.revocations import RevocationFeed, RevocationFeedError
from preview_tokens.data_plane.exchange import exchange_context
from preview_tokens.data_plane.wiring import preview_gate

from tests.integration.conftest import clear_cold_start_caches
from tests.integration.test_exchange_authorizer import context_of
from tests.integration.test_metrics import counts
from tests.support.deployment import SANDBOX, Deployment, fleet_verifier
from tests.support.events import load_event, set_header
from tests.support.preview_tokens import host_of, token_for


def exchanged(token: str, cookie: str | None = None, sandbox_id: str | None = None) -> dict[str, Any]:
    event = load_event("exchange_mt", token=token)
    if sandbox_id is not None:
        event = set_header(event, "Host", host_of(sandbox_id))
        event["requestContext"]["domainName"] = host_of(sandbox_id)
    if cookie is not None:
        event = set_header(event, "Cookie", cookie)
    context = context_of(event)
    assert "reason" not in context, context
    return context


def links(deployment: Deployment) -> list[str]:
    feed = RevocationFeed(deployment.resources.tables["RevocationsTable"])
    return feed.renewal_links_since(None, int(time.time()))


def test_a_renewal_in_the_same_cookie_jar_records_a_link_the_fleet_verifies(deployment: Deployment) -> None:
    first = exchanged(token_for(deployment))
    renewed = exchanged(
        token_for(deployment, expires_in=1200),
        f"__Host-mp_session=ignored; __Host-mp_origin={first['origin_assertion']}; theme=dark",
    )

    recorded = links(deployment)

    assert len(recorded) == 1
    previous, assertion = fleet_verifier(deployment).verify_renewal(recorded[0])
    assert previous == json.loads(first["claims"])["jti"]
    assert assertion.token_id == json.loads(renewed["claims"])["jti"]
    assert assertion == fleet_verifier(deployment).verify(renewed["origin_assertion"], assertion.sandbox_id)


def test_no_link_without_the_previous_sessions_assertion_of_the_same_scope_and_sandbox(
    deployment: Deployment,
) -> None:
    read = exchanged(token_for(deployment))
    other_sandbox = exchanged(token_for(deployment, sandbox_id="sbx-other"), sandbox_id="sbx-other")

    exchanged(token_for(deployment))  # a first open: no cookie at all
    exchanged(token_for(deployment), "theme=dark")
    exchanged(token_for(deployment, scope="interact"), f"__Host-mp_origin={read['origin_assertion']}")
    exchanged(token_for(deployment), f"__Host-mp_origin={other_sandbox['origin_assertion']}")
    exchanged(token_for(deployment), f"__Host-mp_origin={read['origin_assertion'][:-4]}AAAA")

    assert links(deployment) == []


def test_a_renewal_whose_link_cannot_be_recorded_is_granted_all_the_same(deployment: Deployment) -> None:
    first = exchanged(token_for(deployment))
    attempts: list[str] = []

    def unreachable_table(link: str, previous_token_id: str, expires_at: int, now: float) -> None:
        attempts.append(previous_token_id)
        raise RevocationFeedError("ConnectionError")

    token = token_for(deployment)
    context = exchange_context(
        preview_gate(),
        token,
        host_of(SANDBOX),
        f"__Host-mp_origin={first['origin_assertion']}",
        unreachable_table,
    )

    assert attempts == [json.loads(first["claims"])["jti"]]
    assert context["token"] == token  # the grant stands: the old token's streams end at its exp
    assert "reason" not in context
    assert links(deployment) == []


def test_each_renewal_counts_whether_its_link_was_recorded(
    deployment: Deployment, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = exchanged(token_for(deployment))
    capsys.readouterr()
    exchanged(token_for(deployment), f"__Host-mp_origin={first['origin_assertion']}")
    exchanged(token_for(deployment))  # a first open: nothing to count
    second = exchanged(token_for(deployment))

    def table_unreachable(*args: object) -> None:
        raise RevocationFeedError("ConnectionError")

    monkeypatch.setattr(RevocationFeed, "record_renewal", table_unreachable)
    clear_cold_start_caches()
    exchanged(token_for(deployment), f"__Host-mp_origin={second['origin_assertion']}")

    renewals = [metric for metric in counts(capsys.readouterr().out) if metric[0] == "RenewalLinks"]

    assert renewals == [
        ("RenewalLinks", {"Outcome": "recorded"}),
        ("RenewalLinks", {"Outcome": "not_recorded"}),
    ]
