"""The denial route and the tenant's frame-ancestors, with the real exchange handler against moto.

``PreviewEdge`` sends every request it refuses to ``/__preview/denied`` on the REST API (its method
kept), the reason in ``x-preview-denial``. The ExchangeFunction renders the denial page there:
403 (503 for ``unavailable``), the event posted to the parent, and the CSP ``frame-ancestors`` of
the host's tenant, since CloudFront runs no viewer-response function on a status of 400 or more.
The exchange signs the same source list into the origin assertion (``fa``) for the fleet ingress.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.support.deployment import OTHER_SANDBOX, SANDBOX, TENANT, Deployment, fleet_verifier
from tests.support.events import lambda_context, load_event, set_header
from tests.support.exchange import exchange_handler
from tests.support.preview_tokens import token_for
from tests.support.responses import HttpResponse, from_proxy_result

DECLARED = ("https://app.acme.example", "https://*.acme.dev")
DEFAULT = "https://app.example.com"  # FRAME_ANCESTORS of the integration deployment


def denied(reason: str, sandbox: str = "", host: str | None = None) -> HttpResponse:
    event = load_event("exchange_denied", reason=reason, sandbox=sandbox)
    if host is not None:
        event = set_header(event, "Host", host)
    return from_proxy_result(exchange_handler(event, lambda_context()))


def posted_event(page: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="preview-event">(.*?)</script>', page, re.S)
    assert match, page
    event: dict[str, Any] = json.loads(match.group(1))
    return event


def frame_ancestors(response: HttpResponse) -> str:
    policy = response.header("Content-Security-Policy") or ""
    (directive,) = [d.strip() for d in policy.split(";") if d.strip().startswith("frame-ancestors")]
    return directive.removeprefix("frame-ancestors ")


@pytest.mark.parametrize(
    ("reason", "event_type"),
    [
        ("no_token", "preview.denied"),
        ("invalid_token", "preview.denied"),
        ("expired", "preview.expired"),
        ("wrong_sandbox", "preview.denied"),
        ("read_only", "preview.denied"),
    ],
)
def test_the_denial_page_says_why_posts_it_to_the_parent_and_carries_the_tenants_frame_ancestors(
    deployment: Deployment, reason: str, event_type: str
) -> None:
    deployment.tenants.set_frame_ancestors(TENANT, DECLARED)

    response = denied(reason, sandbox=SANDBOX)

    assert response.status == 403
    assert response.header("Content-Type") == "text/html; charset=utf-8"
    assert response.header("Cache-Control") == "no-store"
    assert frame_ancestors(response) == " ".join(DECLARED)
    assert posted_event(response.body) == {"type": event_type, "sandbox_id": SANDBOX, "reason": reason}
    assert "window.parent.postMessage" in response.body


def test_a_tenant_that_declared_nothing_gets_the_stacks_default(deployment: Deployment) -> None:
    response = denied("no_token")

    assert frame_ancestors(response) == DEFAULT


def test_an_unknown_host_gets_the_default_and_no_sandbox(deployment: Deployment) -> None:
    deployment.tenants.set_frame_ancestors(TENANT, DECLARED)

    response = denied("expired", sandbox=SANDBOX, host="sbx-nobody.sandboxes.example.com")

    assert frame_ancestors(response) == DEFAULT
    assert posted_event(response.body)["sandbox_id"] is None, "named only when it is this host's"


def test_another_tenants_sandbox_gets_that_tenants_policy_not_this_ones(deployment: Deployment) -> None:
    deployment.tenants.set_frame_ancestors(TENANT, DECLARED)

    response = denied("no_token", host=f"{OTHER_SANDBOX}.sandboxes.example.com")

    assert frame_ancestors(response) == DEFAULT


@pytest.mark.parametrize("reason", ["", "<script>alert(1)</script>", "allowed", "NO_TOKEN"])
def test_a_reason_the_page_does_not_know_is_no_token_and_nothing_is_reflected(
    deployment: Deployment, reason: str
) -> None:
    response = denied(reason)

    assert response.status == 403
    assert posted_event(response.body)["reason"] == "no_token"
    assert "<script>alert" not in response.body


def test_unavailable_is_a_503_to_retry(deployment: Deployment) -> None:
    response = denied("unavailable")

    assert response.status == 503
    assert int(response.header("Retry-After") or "0") >= 1
    assert posted_event(response.body)["type"] == "preview.unavailable"


def exchanged_assertion(token: str) -> str:
    """The origin assertion the exchange sets as ``__Host-mp_origin`` for ``token``."""
    response = from_proxy_result(exchange_handler(load_event("exchange_mt", token=token), lambda_context()))
    (assertion,) = [
        c.partition(";")[0].partition("=")[2]
        for c in response.multi_header("Set-Cookie")
        if c.startswith("__Host-mp_origin=")
    ]
    return assertion


def test_the_exchange_signs_the_tenants_frame_ancestors_into_the_origin_assertion(
    deployment: Deployment,
) -> None:
    deployment.tenants.set_frame_ancestors(TENANT, DECLARED)
    assertion = exchanged_assertion(token_for(deployment, scope="read", expires_in=900))

    assert fleet_verifier(deployment).verify(assertion, SANDBOX).frame_ancestors == " ".join(DECLARED)


def test_without_a_declaration_the_assertion_carries_the_default(deployment: Deployment) -> None:
    assertion = exchanged_assertion(token_for(deployment, scope="interact", expires_in=900))

    assert fleet_verifier(deployment).verify(assertion, SANDBOX).frame_ancestors == DEFAULT
