"""The mint API end to end in-process: real handler, real events, DynamoDB and KMS on moto."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import jwt
import mint_api
import pytest
from preview_tokens.data_plane.wiring import preview_gate
from preview_tokens.keys.signing_keys import ACTIVE, StoredSigningKey, encryption_context

from tests.integration.conftest import clear_cold_start_caches
from tests.integration.test_token_lifecycle import allowed, list_tokens, operator_lifecycle
from tests.support.deployment import OTHER_SANDBOX, PREVIEW_DOMAIN, SANDBOX, TENANT, Deployment
from tests.support.events import for_sandbox, lambda_context, load_event, set_header, with_body
from tests.support.jwks import AUDIENCE, ISSUER, TENANT_CLAIM, IdentityProvider, identity_provider
from tests.support.responses import HttpResponse, from_proxy_result


def mint(event: dict[str, Any]) -> HttpResponse:
    return from_proxy_result(mint_api.lambda_handler(event, lambda_context()))


def mint_with(credential: str | None, body: str | None = None, sandbox_id: str = SANDBOX) -> HttpResponse:
    event = load_event("mint_read", credential=credential or "")
    if credential is None:
        event = set_header(event, "Authorization", None)
    event = with_body(event, body)
    return mint(for_sandbox(event, sandbox_id))


def assert_error(response: HttpResponse, status: int, code: str) -> None:
    assert response.status == status, response.body
    assert set(response.json()) == {"error", "request_id"}
    assert response.json()["request_id"] == response.header("X-Request-Id")
    assert response.json()["error"]["code"] == code
    if status in (429, 503):
        assert response.json()["error"]["retryable"] is True
        assert response.json()["error"]["retry_after_ms"] == int(response.header("Retry-After") or 0) * 1000
    assert isinstance(response.json()["error"]["message"], str)
    assert response.json()["error"]["message"]
    assert response.header("X-Request-Id") == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    assert "Traceback" not in response.body


# ----------------------------------------------------------------------------- success


def test_a_tenant_backend_mints_a_read_token_by_default(deployment: Deployment) -> None:
    before = int(time.time())
    response = mint(load_event("mint_no_body", credential=deployment.api_key))

    assert response.status == 200, response.body
    body = response.json()
    assert set(body) == {"token", "url", "expires_at", "scope", "id"}
    assert body["scope"] == "read"
    assert body["token"].startswith("mp_")
    claims = jwt.decode(
        body["token"][3:],
        deployment.signing_secret(deployment.kid),
        algorithms=["HS256"],
        audience=f"{SANDBOX}.{PREVIEW_DOMAIN}",
    )
    assert claims["exp"] - claims["iat"] == 3600
    assert before <= claims["iat"] <= int(time.time())
    assert response.header("Cache-Control") == "no-store"
    assert response.header("X-Request-Id") == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"


def test_the_token_is_bound_to_sandbox_host_tenant_and_scope(deployment: Deployment) -> None:
    response = mint(load_event("mint_interact", credential=deployment.api_key))

    assert response.status == 200, response.body
    body = response.json()
    header = jwt.get_unverified_header(body["token"][3:])
    assert header == {"alg": "HS256", "kid": deployment.kid, "typ": "JWT"}
    claims = jwt.decode(
        body["token"][3:],
        deployment.signing_secret(deployment.kid),
        algorithms=["HS256"],
        audience=f"{SANDBOX}.{PREVIEW_DOMAIN}",
    )
    assert claims["sub"] == SANDBOX
    assert claims["tid"] == TENANT
    assert claims["scope"] == "interact" == body["scope"]
    assert claims["exp"] - claims["iat"] == 600
    assert body["expires_at"] == datetime.fromtimestamp(claims["exp"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert body["expires_at"].endswith("Z")
    assert body["url"] == f"https://{SANDBOX}.{PREVIEW_DOMAIN}?mt={body['token']}"


def test_two_mints_carry_different_token_ids(deployment: Deployment) -> None:
    tokens = [mint(load_event("mint_read", credential=deployment.api_key)).json()["token"] for _ in range(2)]
    secret = deployment.signing_secret(deployment.kid)
    audience = f"{SANDBOX}.{PREVIEW_DOMAIN}"
    ids = {jwt.decode(t[3:], secret, algorithms=["HS256"], audience=audience)["jti"] for t in tokens}
    assert len(ids) == 2


@pytest.mark.parametrize("expires_in", [1, 86400])
def test_expires_in_accepts_the_bounds(deployment: Deployment, expires_in: int) -> None:
    response = mint_with(deployment.api_key, f'{{"expires_in": {expires_in}}}')
    assert response.status == 200, response.body
    token = response.json()["token"][3:]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == expires_in


def test_an_empty_json_object_takes_every_default(deployment: Deployment) -> None:
    response = mint_with(deployment.api_key, "{}")
    assert response.status == 200
    assert response.json()["scope"] == "read"


def test_after_rotation_new_tokens_use_the_new_key_and_old_tokens_still_verify(
    deployment: Deployment,
) -> None:
    old_token = mint(load_event("mint_read", credential=deployment.api_key)).json()["token"]
    new_kid = deployment.signing_keys.create(deployment.resources.kms_key_id).kid
    clear_cold_start_caches()  # or wait SIGNING_KEYS_REFRESH_SECONDS in a warm function

    new_token = mint(load_event("mint_read", credential=deployment.api_key)).json()["token"]

    assert jwt.get_unverified_header(new_token[3:])["kid"] == new_kid != deployment.kid
    gate = preview_gate()
    host = f"{SANDBOX}.{PREVIEW_DOMAIN}"
    assert gate.verify(old_token, host).sandbox_id == SANDBOX
    assert gate.verify(new_token, host).sandbox_id == SANDBOX


# ------------------------------------------------------------------------ request body


@pytest.mark.parametrize(
    "body",
    ['{"expires_in": 0}', '{"expires_in": 86401}', '{"expires_in": -5}', '{"expires_in": "60"}',
     '{"expires_in": 60.5}', '{"expires_in": true}', '{"expires_in": null}', '{"expires_in": 86400.5}',
     '{"expires_in": 86401.0}'],
)  # fmt: skip
def test_expires_in_outside_1_to_86400_or_not_an_integer_is_422(deployment: Deployment, body: str) -> None:
    assert_error(mint_with(deployment.api_key, body), 422, "invalid_expires_in")


@pytest.mark.parametrize(("body", "seconds"), [('{"expires_in": 609.0}', 609), ('{"expires_in": 1e3}', 1000)])
def test_an_integral_number_is_the_integer_the_schema_says(
    deployment: Deployment, body: str, seconds: int
) -> None:
    # JSON Schema counts 609.0 as an integer, and the published schema says "integer"
    response = mint_with(deployment.api_key, body)
    assert response.status == 200, response.body
    claims = jwt.decode(
        response.json()["token"][3:],
        deployment.signing_secret(deployment.kid),
        algorithms=["HS256"],
        audience=f"{SANDBOX}.{PREVIEW_DOMAIN}",
    )
    assert claims["exp"] - claims["iat"] == seconds


@pytest.mark.parametrize("scope", ['"admin"', '"READ"', '"Interact"', '""', "null", "1", '["read"]'])
def test_scope_other_than_read_or_interact_is_422(deployment: Deployment, scope: str) -> None:
    assert_error(mint_with(deployment.api_key, f'{{"scope": {scope}}}'), 422, "invalid_scope")


@pytest.mark.parametrize(
    "body",
    ['{"expires_in": 60, "tenant_id": "globex"}', '{"Scope": "read"}', "[]", '"read"', "42", "null",
     "{not json", "expires_in=60", '{"scope": "read"'],
)  # fmt: skip
def test_unknown_fields_and_non_object_or_non_json_bodies_are_400(deployment: Deployment, body: str) -> None:
    assert_error(mint_with(deployment.api_key, body), 400, "invalid_request")


@pytest.mark.parametrize(
    ("event_name", "status", "code"),
    [
        ("mint_invalid_scope", 422, "invalid_scope"),
        ("mint_invalid_expires_in", 422, "invalid_expires_in"),
        ("mint_unknown_field", 400, "invalid_request"),
        ("mint_not_json", 415, "unsupported_media_type"),
    ],
)
def test_each_recorded_bad_request_event_gets_its_error(
    deployment: Deployment, event_name: str, status: int, code: str
) -> None:
    assert_error(mint(load_event(event_name, credential=deployment.api_key)), status, code)


def test_a_bad_credential_is_reported_before_a_bad_body(deployment: Deployment) -> None:
    assert_error(mint_with("msk_unknown", "{not json"), 401, "unauthorized")


# ------------------------------------------------------------------------- credentials


def test_no_credential_is_401(deployment: Deployment) -> None:
    response = mint(load_event("mint_no_credential"))
    assert_error(response, 401, "unauthorized")
    assert response.header("WWW-Authenticate") == 'Bearer realm="preview-tokens"'


@pytest.mark.parametrize(
    "authorization",
    ["Basic bXNrX2FiYzo=", "Bearer", "Bearer ", "Bearer a b", "msk_abc", "Bearer not-a-credential",
     "Bearer msk_", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x"],
)  # fmt: skip
def test_a_malformed_credential_is_401(deployment: Deployment, authorization: str) -> None:
    event = set_header(load_event("mint_read", credential=""), "Authorization", authorization)
    assert_error(mint(event), 401, "unauthorized")


def test_an_unknown_api_key_is_401(deployment: Deployment) -> None:
    assert_error(mint_with("msk_" + "A" * 43), 401, "unauthorized")


@pytest.mark.parametrize("order", ["key first", "junk first"])
def test_two_authorization_headers_are_no_credential(deployment: Deployment, order: str) -> None:
    """Neither the first nor the last wins: two readers of the request could disagree on who asks."""
    sent = [f"Bearer {deployment.api_key}", "Bearer msk_junk"]
    if order == "junk first":
        sent.reverse()
    event = set_header(load_event("mint_read", credential=deployment.api_key), "Authorization", sent[-1])
    event["multiValueHeaders"]["Authorization"] = sent

    assert_error(mint(event), 401, "unauthorized")


def test_a_revoked_api_key_is_401(deployment: Deployment) -> None:
    assert mint_with(deployment.api_key).status == 200
    assert deployment.api_keys.revoke(TENANT, deployment.api_key_id)
    assert_error(mint_with(deployment.api_key), 401, "unauthorized")


def test_a_key_without_previews_write_is_403(deployment: Deployment) -> None:
    assert_error(mint_with(deployment.api_key_without_scope), 403, "forbidden")


@pytest.mark.parametrize("body", ['{"scope": "x"}', '{"x": 1}', "[]", "not json"])
def test_a_key_without_previews_write_is_403_whatever_its_body(deployment: Deployment, body: str) -> None:
    assert_error(mint_with(deployment.api_key_without_scope, body), 403, "forbidden")


@pytest.mark.parametrize("body", [" ", "\n", "\t \r\n"])
def test_a_body_of_whitespace_is_not_an_absent_body(deployment: Deployment, body: str) -> None:
    assert_error(mint_with(deployment.api_key, body), 400, "invalid_request")


def test_a_key_of_a_disabled_tenant_is_403(deployment: Deployment) -> None:
    deployment.tenants.put(TENANT, "Acme", status="disabled")
    assert_error(mint_with(deployment.api_key), 403, "forbidden")


# -------------------------------------------------------------------------- sandboxes


def test_another_tenants_absent_or_deleted_sandbox_is_the_same_404(deployment: Deployment) -> None:
    deployment.sandboxes.put(TENANT, "sbx-gone")
    deployment.sandboxes.delete(TENANT, "sbx-gone")

    responses = [
        mint(load_event("mint_other_tenant_sandbox", credential=deployment.api_key)),
        mint_with(deployment.api_key, sandbox_id="sbx-never-existed"),
        mint_with(deployment.api_key, sandbox_id="sbx-gone"),
        mint_with(deployment.api_key, sandbox_id="NOT..a-valid-id"),
    ]

    for response in responses:
        assert_error(response, 404, "sandbox_not_found")
    assert len({response.body for response in responses}) == 1
    assert mint_with(deployment.other_tenant_api_key, sandbox_id=OTHER_SANDBOX).status == 200


# ------------------------------------------------------------------------ dependencies


def test_kms_failing_is_503_with_retry_after(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", "http://127.0.0.1:9")  # nothing listens: connection refused
    response = mint_with(deployment.api_key)
    assert_error(response, 503, "unavailable")
    assert response.header("Retry-After") == "5"


def test_kms_refusing_to_decrypt_the_signing_key_is_503(deployment: Deployment) -> None:

    # a key whose ciphertext was made for another kid: KMS refuses it (encryption context mismatch)
    ciphertext = boto3.client("kms").generate_data_key(
        KeyId=deployment.resources.kms_key_id,
        KeySpec="AES_256",
        EncryptionContext=encryption_context("k-other"),
    )["CiphertextBlob"]
    boto3.client("dynamodb").put_item(
        TableName=deployment.resources.tables["SigningKeysTable"],
        Item=StoredSigningKey("k9999-tampered", ciphertext, ACTIVE, "9999-01-01T00:00:00Z").to_item(),
    )
    assert_error(mint_with(deployment.api_key), 503, "unavailable")


def test_dynamodb_failing_is_503_with_retry_after(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    response = mint_with(deployment.api_key)
    assert_error(response, 503, "unavailable")
    assert response.header("Retry-After") == "5"


def test_no_signing_key_yet_is_503_not_500(deployment: Deployment) -> None:
    deployment.signing_keys.retire(deployment.kid)
    assert_error(mint_with(deployment.api_key), 503, "unavailable")


# ------------------------------------------------------------------------------- JWT


@pytest.fixture
def idp(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> Iterator[IdentityProvider]:
    with identity_provider() as provider:
        monkeypatch.setenv("JWT_ISSUER", ISSUER)
        monkeypatch.setenv("JWT_AUDIENCE", AUDIENCE)
        monkeypatch.setenv("JWT_JWKS_URL", provider.jwks_url)
        monkeypatch.setenv("JWT_TENANT_CLAIM", TENANT_CLAIM)
        clear_cold_start_caches()
        yield provider


@pytest.mark.parametrize(
    ("algorithm", "scopes"),
    [("RS256", {"scope": "openid previews:write"}), ("ES256", {"scope": None, "scp": ["previews:write"]})],
)
def test_a_jwt_with_previews_write_mints(
    idp: IdentityProvider, algorithm: str, scopes: dict[str, Any]
) -> None:
    token = idp.token(
        algorithm=algorithm,
        scope=scopes.get("scope"),
        extra={k: v for k, v in scopes.items() if k != "scope"},
    )
    response = mint_with(token)
    assert response.status == 200, response.body
    claims = jwt.decode(response.json()["token"][3:], options={"verify_signature": False})
    assert claims["tid"] == TENANT


def _hs256_with_public_key(idp: IdentityProvider) -> str:
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","kid":"rs256","typ":"JWT"}').rstrip(b"=")
    now = int(time.time())
    payload = base64.urlsafe_b64encode(
        (
            f'{{"iss":"{ISSUER}","aud":"{AUDIENCE}","exp":{now + 300},"iat":{now},'
            f'"{TENANT_CLAIM}":"acme","scope":"previews:write"}}'
        ).encode()
    ).rstrip(b"=")
    signature = hmac.new(idp.public_pem(), header + b"." + payload, hashlib.sha256).digest()
    return (header + b"." + payload + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()


def _alg_none(idp: IdentityProvider) -> str:
    _header, payload, _ = idp.token().split(".")
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","kid":"rs256","typ":"JWT"}').rstrip(b"=").decode()
    return f"{none_header}.{payload}."


def _bad_signature(idp: IdentityProvider) -> str:
    header, payload, signature = idp.token().split(".")
    flipped = "A" if signature[10] != "A" else "B"
    return f"{header}.{payload}.{signature[:10]}{flipped}{signature[11:]}"


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda idp: idp.token(expires_in=-60), id="expired"),
        pytest.param(lambda idp: idp.token(issuer="https://evil.example/"), id="wrong-issuer"),
        pytest.param(lambda idp: idp.token(audience="someone-else"), id="wrong-audience"),
        pytest.param(_bad_signature, id="bad-signature"),
        pytest.param(_alg_none, id="alg-none"),
        pytest.param(_hs256_with_public_key, id="hs256-signed-with-the-public-key"),
    ],
)
def test_an_invalid_jwt_is_401(idp: IdentityProvider, make_token: Any) -> None:
    assert_error(mint_with(make_token(idp)), 401, "unauthorized")


def test_a_jwt_without_previews_write_is_403(idp: IdentityProvider) -> None:
    assert_error(mint_with(idp.token(scope="openid profile")), 403, "forbidden")


@pytest.mark.parametrize("subject", [None, "", 7])
def test_a_jwt_without_a_subject_string_is_401(idp: IdentityProvider, subject: object) -> None:
    token = idp.token(extra={"sub": subject})
    if subject is None:  # absent, not null
        claims = jwt.decode(token, options={"verify_signature": False})
        del claims["sub"]
        token = jwt.encode(claims, idp.rsa_key, algorithm="RS256", headers={"kid": "rs256"})
    assert_error(mint_with(token), 401, "unauthorized")


def test_a_jwt_whose_sub_is_an_api_key_id_is_not_that_key(
    deployment: Deployment, idp: IdentityProvider
) -> None:
    """An identity provider's ``sub`` is any string; one equal to an API key's id neither passes
    for that key in the list nor ends with it when the key is revoked with its tokens."""
    response = mint_with(idp.token(extra={"sub": deployment.api_key_id}))
    assert response.status == 200, response.body
    token = response.json()["token"]

    listed = list_tokens(deployment.api_key).json()["tokens"]
    assert [entry["created_by"] for entry in listed] == [f"jwt:{deployment.api_key_id}"]
    assert operator_lifecycle().revoke_api_key(TENANT, deployment.api_key_id, True, "cli-test")
    assert allowed(token)


def test_a_jwt_for_an_unregistered_tenant_is_403(idp: IdentityProvider) -> None:
    assert_error(mint_with(idp.token(tenant="initech")), 403, "forbidden")


def test_a_jwt_cannot_reach_another_tenants_sandbox(idp: IdentityProvider) -> None:
    assert_error(mint_with(idp.token(), sandbox_id=OTHER_SANDBOX), 404, "sandbox_not_found")


def test_without_jwt_settings_a_valid_jwt_is_401(deployment: Deployment) -> None:
    with identity_provider() as provider:
        assert_error(mint_with(provider.token()), 401, "unauthorized")


# ------------------------------------------------------------------------- the document


def test_the_openapi_document_is_served_and_describes_the_mint_route(deployment: Deployment) -> None:
    response = mint(load_event("openapi_document"))
    assert response.status == 200
    document = response.json()
    operation = document["paths"]["/api/v1/sandboxes/{id}/preview-token"]["post"]
    body_schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert set(body_schema["properties"]) == {"expires_in", "scope"}
    assert body_schema["additionalProperties"] is False
    assert {"401", "403", "404", "422", "503"} <= set(operation["responses"])


def test_an_unknown_route_is_a_json_404(deployment: Deployment) -> None:
    event = load_event("openapi_document")
    event["path"] = event["resource"] = "/api/v1/nothing-here"
    assert_error(mint(event), 404, "not_found")
