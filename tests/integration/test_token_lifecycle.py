"""Revocation and the live-token list, end to end in-process: mint API, exchange route on moto.

Tokens are minted through the real mint handler (so they have records, a ``cid`` and audit
entries), revoked through the real lifecycle endpoints or the operator's lifecycle, and then
presented to the real exchange route: its authorizer (``exchange_authorizer``) and the exchange.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import mint_api
import pytest
from preview_tokens.control_plane.audit import AuditTrail
from preview_tokens.control_plane.token_lifecycle import TokenLifecycle, lifecycle_from_settings
from preview_tokens.settings import mint_settings

from tests.support.deployment import OTHER_SANDBOX, OTHER_TENANT, SANDBOX, TENANT, Deployment
from tests.support.events import for_sandbox, lambda_context, load_event, set_header, with_body
from tests.support.exchange import authorize as authorize_exchange
from tests.support.exchange import exchange_handler
from tests.support.preview_tokens import host_of
from tests.support.responses import HttpResponse, from_proxy_result

SECOND_SANDBOX = "sbx-second"


def call(event: dict[str, Any]) -> HttpResponse:
    return from_proxy_result(mint_api.lambda_handler(event, lambda_context()))


def minted(credential: str, sandbox_id: str = SANDBOX, scope: str = "read") -> dict[str, Any]:
    event = with_body(load_event("mint_read", credential=credential), json.dumps({"scope": scope}))
    response = call(for_sandbox(event, sandbox_id))
    assert response.status == 200, response.body
    body: dict[str, Any] = response.json()
    return body


def revoke(credential: str, body: str | None) -> HttpResponse:
    return call(with_body(load_event("revoke_token", credential=credential, token=""), body))


def revoke_token(credential: str, token: str) -> HttpResponse:
    return call(load_event("revoke_token", credential=credential, token=token))


def sandbox_event(name: str, credential: str, sandbox_id: str) -> dict[str, Any]:
    event = load_event(name, credential=credential)
    event["path"] = event["path"].replace(SANDBOX, sandbox_id)
    event["requestContext"]["path"] = event["requestContext"]["path"].replace(SANDBOX, sandbox_id)
    event["pathParameters"] = {"id": sandbox_id}
    return event


def delete_tokens(credential: str, sandbox_id: str = SANDBOX) -> HttpResponse:
    return call(sandbox_event("revoke_sandbox_tokens", credential, sandbox_id))


def delete_token(credential: str, token_id: str, sandbox_id: str = SANDBOX) -> HttpResponse:
    event = load_event("revoke_sandbox_token", credential=credential, token_id=token_id)
    if sandbox_id != SANDBOX:
        event["path"] = event["path"].replace(SANDBOX, sandbox_id)
        event["pathParameters"]["id"] = sandbox_id
    return call(event)


def list_tokens(credential: str, sandbox_id: str = SANDBOX) -> HttpResponse:
    return call(sandbox_event("list_sandbox_tokens", credential, sandbox_id))


def mt_event(token: str, sandbox_id: str = SANDBOX) -> dict[str, Any]:
    """The exchange route's request for a ``?mt=`` link opened on ``sandbox_id``'s host."""
    event = set_header(load_event("exchange_mt", token=token), "Host", host_of(sandbox_id))
    event["requestContext"]["domainName"] = host_of(sandbox_id)
    return event


def authorize(token: str, sandbox_id: str = SANDBOX) -> dict[str, Any]:
    """The ``?mt=`` authorizer's context: a grant, or the refusal's reason."""
    context: dict[str, Any] = authorize_exchange(mt_event(token, sandbox_id))["context"]
    return context


def allowed(token: str, sandbox_id: str = SANDBOX) -> bool:
    return "reason" not in authorize(token, sandbox_id)


def exchange(token: str, sandbox_id: str = SANDBOX, referer: str | None = None) -> HttpResponse:
    event = mt_event(token, sandbox_id)
    if referer:
        event = set_header(event, "Referer", referer)
    return from_proxy_result(exchange_handler(event, lambda_context()))


def assert_revoked_denial(context: dict[str, Any], sandbox_id: str) -> None:
    assert context["reason"] == "revoked"
    assert context["sandbox_id"] == sandbox_id  # the revoked token proved its sandbox
    assert "token" not in context


def operator_lifecycle(edge: dict[str, str] | None = None) -> TokenLifecycle:
    """The lifecycle the operator CLI uses, with a dict standing in for the edge store."""
    lifecycle = lifecycle_from_settings(mint_settings(), mint_api.mint_service().minter.signing_keys)
    if edge is not None:
        lifecycle._edge_put = edge.__setitem__
    return lifecycle


@pytest.fixture
def second_sandbox(deployment: Deployment) -> str:
    deployment.sandboxes.put(TENANT, SECOND_SANDBOX)
    return SECOND_SANDBOX


# ------------------------------------------------------------------------ revoke by token


def test_a_revoked_token_is_refused_by_the_authorizer_and_the_exchange_others_are_not(
    deployment: Deployment, second_sandbox: str
) -> None:
    doomed = minted(deployment.api_key)["token"]
    same_sandbox = minted(deployment.api_key)["token"]
    other_sandbox = minted(deployment.api_key, second_sandbox)["token"]
    assert allowed(doomed)

    response = revoke_token(deployment.api_key, doomed)

    assert response.status == 200
    assert response.json() == {}
    assert_revoked_denial(authorize(doomed), SANDBOX)
    denied = exchange(doomed)
    assert denied.status == 403
    assert "Preview revoked" in denied.body
    assert allowed(same_sandbox)
    assert allowed(other_sandbox, second_sandbox)


def test_another_tenants_token_gets_200_and_stays_live(deployment: Deployment) -> None:
    theirs = minted(deployment.other_tenant_api_key, OTHER_SANDBOX)["token"]

    response = revoke_token(deployment.api_key, theirs)

    assert response.status == 200
    assert response.json() == {}
    assert allowed(theirs, OTHER_SANDBOX)


@pytest.mark.parametrize(
    "token",
    ["", "mp_unknown", "not-a-token", "mp_eyJhbGciOiJIUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0.e30.c2ln"],
)
def test_an_unknown_token_gets_the_same_200(deployment: Deployment, token: str) -> None:
    response = revoke_token(deployment.api_key, token)
    assert response.status == 200
    assert response.json() == {}


def test_revoking_twice_is_200_both_times(deployment: Deployment) -> None:
    token = minted(deployment.api_key)["token"]
    assert revoke_token(deployment.api_key, token).status == 200
    assert revoke_token(deployment.api_key, token).status == 200
    assert not allowed(token)


@pytest.mark.parametrize("body", [None, "", " ", "{}", '{"token": 5}', '["mp_x"]', "token=mp_x"])
def test_a_body_without_a_token_string_is_400(deployment: Deployment, body: str | None) -> None:
    response = revoke(deployment.api_key, body)
    assert response.status == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert response.json()["request_id"] == response.header("X-Request-Id")


def test_a_credential_without_previews_write_is_403_everywhere(deployment: Deployment) -> None:
    token = minted(deployment.api_key)["token"]
    for response in (
        revoke_token(deployment.api_key_without_scope, token),
        revoke(deployment.api_key_without_scope, "not json"),
        delete_tokens(deployment.api_key_without_scope),
        list_tokens(deployment.api_key_without_scope),
    ):
        assert response.status == 403
        assert response.json()["error"]["code"] == "forbidden"
    assert allowed(token)


def test_no_credential_is_401(deployment: Deployment) -> None:
    event = set_header(load_event("revoke_token", credential="", token="mp_x"), "Authorization", None)
    assert call(event).status == 401


# ------------------------------------------------------------------- revoke one by its id


def test_deleting_one_token_by_its_id_ends_it_and_only_it(deployment: Deployment) -> None:
    doomed = minted(deployment.api_key)
    kept = minted(deployment.api_key, scope="interact")

    response = delete_token(deployment.api_key, doomed["id"])

    assert response.status == 204
    assert response.body == ""
    assert response.header("X-Request-Id")
    assert_revoked_denial(authorize(doomed["token"]), SANDBOX)
    assert exchange(doomed["token"]).status == 403
    assert allowed(kept["token"])
    assert [token["id"] for token in list_tokens(deployment.api_key).json()["tokens"]] == [kept["id"]]
    trail = AuditTrail(deployment.resources.tables["AuditTable"], boto3.client("dynamodb"))
    revocations = [entry for entry in trail.list(TENANT, SANDBOX) if entry["event"] == "revoke"]
    assert len(revocations) == 1
    assert revocations[0]["jti"] == doomed["id"]
    assert revocations[0]["revoked"] == "token"
    assert revocations[0]["actor"] == deployment.api_key_id


def test_deleting_a_token_twice_is_204_both_times(deployment: Deployment) -> None:
    token = minted(deployment.api_key)
    assert delete_token(deployment.api_key, token["id"]).status == 204
    assert delete_token(deployment.api_key, token["id"]).status == 204
    assert not allowed(token["token"])


def test_a_token_id_not_of_this_sandbox_is_404_token_not_found(
    deployment: Deployment, second_sandbox: str
) -> None:
    elsewhere = minted(deployment.api_key, second_sandbox)
    for token_id in ("tok_unknown", elsewhere["id"]):
        response = delete_token(deployment.api_key, token_id)
        assert response.status == 404
        assert response.json()["error"]["code"] == "token_not_found"
    assert allowed(elsewhere["token"], second_sandbox)


def test_another_tenants_sandbox_is_404_sandbox_not_found_and_its_token_lives(deployment: Deployment) -> None:
    theirs = minted(deployment.other_tenant_api_key, OTHER_SANDBOX)
    for sandbox_id in (OTHER_SANDBOX, "sbx-nothing"):
        response = delete_token(deployment.api_key, theirs["id"], sandbox_id)
        assert response.status == 404
        assert response.json()["error"]["code"] == "sandbox_not_found"
    assert allowed(theirs["token"], OTHER_SANDBOX)


def test_deleting_one_token_needs_previews_write(deployment: Deployment) -> None:
    token = minted(deployment.api_key)
    response = delete_token(deployment.api_key_without_scope, token["id"])
    assert response.status == 403
    assert allowed(token["token"])


# --------------------------------------------------------------------- revoke by sandbox


def test_deleting_a_sandboxs_tokens_ends_them_and_leaves_other_sandboxes(
    deployment: Deployment, second_sandbox: str
) -> None:
    tokens = [minted(deployment.api_key, scope=scope)["token"] for scope in ("read", "interact")]
    untouched = minted(deployment.api_key, second_sandbox)["token"]

    response = delete_tokens(deployment.api_key)

    assert response.status == 204
    assert response.body == ""
    for token in tokens:
        assert_revoked_denial(authorize(token), SANDBOX)
    assert allowed(untouched, second_sandbox)
    # A token minted right after (even within the same second) opens a preview again.
    fresh = minted(deployment.api_key)["token"]
    assert allowed(fresh)
    assert exchange(fresh).status == 302


def test_another_tenants_sandbox_is_404_like_an_absent_one(deployment: Deployment) -> None:
    theirs = minted(deployment.other_tenant_api_key, OTHER_SANDBOX)["token"]

    other = delete_tokens(deployment.api_key, OTHER_SANDBOX)
    absent = delete_tokens(deployment.api_key, "sbx-nothing-here")
    listed = list_tokens(deployment.api_key, OTHER_SANDBOX)

    assert other.status == absent.status == listed.status == 404
    assert other.json()["error"] == absent.json()["error"] == listed.json()["error"]
    assert other.json()["error"]["code"] == "sandbox_not_found"
    assert allowed(theirs, OTHER_SANDBOX)


# ------------------------------------------------------------------------- live list


def test_the_list_shows_live_tokens_with_their_first_use_and_never_the_token(
    deployment: Deployment,
) -> None:
    first = minted(deployment.api_key, scope="interact")
    second = minted(deployment.api_key)
    revoked = minted(deployment.api_key)
    revoke_token(deployment.api_key, revoked["token"])
    assert exchange(first["token"], referer="https://app.example.com/dashboard?x=1").status == 302

    response = list_tokens(deployment.api_key)

    assert response.status == 200
    listed = {entry["id"]: entry for entry in response.json()["tokens"]}
    assert set(listed) == {first["id"], second["id"]}
    used, unused = listed[first["id"]], listed[second["id"]]
    assert set(used) == {"id", "scope", "expires_at", "created_at", "created_by", "first_used_at"}
    assert used["scope"] == "interact"
    assert used["expires_at"] == first["expires_at"]
    assert used["created_by"] == deployment.api_key_id
    assert used["first_used_at"].endswith("Z")
    assert unused["first_used_at"] is None
    assert "mp_" not in response.body


def test_after_a_sandbox_wide_revocation_the_list_is_empty(deployment: Deployment) -> None:
    minted(deployment.api_key)
    delete_tokens(deployment.api_key)
    assert list_tokens(deployment.api_key).json() == {"tokens": []}


# ------------------------------------------------------------------ operator lifecycle


def test_deleting_a_sandbox_ends_its_tokens(deployment: Deployment, second_sandbox: str) -> None:
    token = minted(deployment.api_key)["token"]
    untouched = minted(deployment.api_key, second_sandbox)["token"]

    assert operator_lifecycle().delete_sandbox(TENANT, SANDBOX, "cli-test")

    assert_revoked_denial(authorize(token), SANDBOX)
    assert allowed(untouched, second_sandbox)
    assert not operator_lifecycle().delete_sandbox(OTHER_TENANT, second_sandbox, "cli-test")


def test_disabling_a_tenant_ends_its_tokens_and_not_another_tenants(deployment: Deployment) -> None:
    token = minted(deployment.api_key)["token"]
    theirs = minted(deployment.other_tenant_api_key, OTHER_SANDBOX)["token"]

    assert operator_lifecycle().disable_tenant(TENANT, "cli-test")

    assert_revoked_denial(authorize(token), SANDBOX)
    assert allowed(theirs, OTHER_SANDBOX)
    assert deployment.tenants.get(TENANT) is not None
    assert not deployment.tenants.get(TENANT).active  # type: ignore[union-attr]


def test_revoking_an_api_key_with_tokens_ends_the_tokens_it_minted_only(deployment: Deployment) -> None:
    second_key = deployment.api_keys.create(TENANT, ["previews:write"])
    doomed = minted(deployment.api_key)["token"]
    kept = minted(second_key.secret)["token"]

    assert operator_lifecycle().revoke_api_key(TENANT, deployment.api_key_id, True, "cli-test")

    assert_revoked_denial(authorize(doomed), SANDBOX)
    assert allowed(kept)
    assert [entry["created_by"] for entry in list_tokens(second_key.secret).json()["tokens"]] == [
        second_key.key.key_id
    ]


def test_revoking_an_api_key_without_tokens_leaves_its_tokens(deployment: Deployment) -> None:
    token = minted(deployment.api_key)["token"]
    assert operator_lifecycle().revoke_api_key(TENANT, deployment.api_key_id, False, "cli-test")
    assert allowed(token)


def test_every_revocation_is_written_to_the_edge_store_under_contract_4_keys(
    deployment: Deployment, second_sandbox: str
) -> None:
    edge: dict[str, str] = {}
    token = minted(deployment.api_key)
    lifecycle = operator_lifecycle(edge)
    caller = mint_api.mint_service().credentials.authenticate(f"Bearer {deployment.api_key}")

    lifecycle.revoke_token(caller, token["token"], "req-1")
    lifecycle.revoke_sandbox_tokens(caller, second_sandbox, "req-2")
    lifecycle.delete_sandbox(TENANT, second_sandbox, "req-3")
    lifecycle.revoke_api_key(TENANT, deployment.api_key_id, True, "req-4")
    lifecycle.disable_tenant(OTHER_TENANT, "req-5")

    exp = int(json.loads(_payload(token["token"]))["exp"])
    assert edge[f"rv.{token['id']}"] == str(exp)
    assert set(edge) == {
        f"rv.{token['id']}",
        f"rs.{second_sandbox}",
        f"rc.{deployment.api_key_id}",
        f"rt.{OTHER_TENANT}",
    }
    assert all(value.isdigit() for value in edge.values())


def _payload(token: str) -> str:
    import base64

    segment = token[3:].split(".")[1]
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)).decode()


# ------------------------------------------------------------------------------ audit


def test_the_audit_trail_shows_mint_first_use_and_revocation_with_their_actors(
    deployment: Deployment,
) -> None:
    token = minted(deployment.api_key, scope="interact")
    exchange(token["token"], referer="https://app.example.com/dashboard?secret=1")
    exchange(token["token"], referer="https://app.example.com/again")  # a reload: not a first use
    revoke_token(deployment.api_key, token["token"])

    trail = AuditTrail(deployment.resources.tables["AuditTable"], boto3.client("dynamodb"))
    entries = trail.list(TENANT, SANDBOX)

    assert [(entry["event"], entry["actor"]) for entry in entries] == [
        ("mint", deployment.api_key_id),
        ("first_use", "viewer"),
        ("revoke", deployment.api_key_id),
    ]
    for entry in entries:
        assert entry["jti"] == token["id"]
        assert entry["credential_id"] == deployment.api_key_id
        assert entry["scope"] == "interact"
        assert entry["tenant_id"] == TENANT
        assert entry["request_id"]
    assert entries[1]["origin"] == "https://app.example.com"
    assert trail.list(TENANT, "sbx-nothing") == []
    assert trail.list(OTHER_TENANT) == []


def test_nothing_in_the_audit_token_and_revocation_tables_is_a_token_or_a_key(
    deployment: Deployment,
) -> None:
    token = minted(deployment.api_key)
    exchange(token["token"])
    revoke_token(deployment.api_key, token["token"])
    delete_tokens(deployment.api_key)
    operator_lifecycle().revoke_api_key(TENANT, deployment.api_key_id, True, "cli-test")

    client = boto3.client("dynamodb")
    tables = deployment.resources.tables
    for table in ("AuditTable", "PreviewTokensTable", "RevocationsTable", "MintCountersTable"):
        dumped = json.dumps(client.scan(TableName=tables[table])["Items"])
        assert "mp_" not in dumped, table
        assert "msk_" not in dumped, table
        assert token["token"].split(".")[2] not in dumped, table
