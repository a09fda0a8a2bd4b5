"""The committed OpenAPI document is the one the code generates (``make openapi``)."""

from __future__ import annotations

import json
from pathlib import Path

import mint_api

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_docs_openapi_json_is_generated_from_the_code() -> None:
    committed = json.loads(DOCUMENT.read_text(encoding="utf-8"))
    assert committed == mint_api.build_openapi(), "docs/openapi.json is stale: run make openapi"


def test_the_document_states_the_request_and_response_contract() -> None:
    document = mint_api.build_openapi()
    operation = document["paths"]["/api/v1/sandboxes/{id}/preview-token"]["post"]
    request = operation["requestBody"]["content"]["application/json"]["schema"]
    assert request["properties"]["expires_in"]["maximum"] == 86400
    assert request["properties"]["expires_in"]["minimum"] == 1
    assert request["properties"]["scope"]["enum"] == ["read", "interact"]
    assert "MintResponse" in json.dumps(operation["responses"]["200"])
    for status in ("400", "401", "403", "404", "422", "429", "503"):
        assert "ErrorResponse" in json.dumps(operation["responses"][status])
    error = document["components"]["schemas"]["ErrorResponse"]
    assert set(error["properties"]) == {"error", "request_id"}
    assert {"retryable", "retry_after_ms"} <= set(
        document["components"]["schemas"]["ErrorDetail"]["properties"]
    )


def test_the_lifecycle_endpoints_are_documented() -> None:
    paths = mint_api.build_openapi()["paths"]
    revoke = paths["/api/v1/preview-tokens/revoke"]["post"]
    assert "RevokeRequest" in json.dumps(revoke["requestBody"])
    assert set(revoke["responses"]) >= {"200", "400", "401", "403", "503"}
    tokens = paths["/api/v1/sandboxes/{id}/preview-tokens"]
    assert "LiveTokens" in json.dumps(tokens["get"]["responses"]["200"])
    assert set(tokens["delete"]["responses"]) >= {"204", "401", "403", "404", "503"}


def test_revoking_one_token_and_the_body_limits_are_documented() -> None:
    paths = mint_api.build_openapi()["paths"]
    one = paths["/api/v1/sandboxes/{id}/preview-tokens/{token_id}"]["delete"]
    assert {"204", "400", "401", "403", "404", "413", "503"} <= set(one["responses"])
    assert "token_not_found" in one["responses"]["404"]["description"]
    assert "ErrorResponse" in json.dumps(one["responses"]["404"])
    assert {parameter["name"] for parameter in one["parameters"]} == {"id", "token_id"}
    for methods in paths.values():
        for operation in methods.values():
            assert "413" in operation["responses"]
            if "requestBody" in operation:
                assert "415" in operation["responses"]


def test_every_error_answer_has_the_error_shape_and_the_headers_a_client_reads() -> None:
    document = mint_api.build_openapi()
    for methods in document["paths"].values():
        for operation in methods.values():
            for status, response in operation["responses"].items():
                headers = set(response["headers"])
                assert {"X-Request-Id", "Cache-Control"} <= headers
                if status.startswith(("4", "5")):
                    assert "ErrorResponse" in json.dumps(response["content"]), (operation["summary"], status)
                if status == "401":
                    assert "WWW-Authenticate" in headers
                if status in ("429", "503"):
                    assert "Retry-After" in headers
    text = json.dumps(document)
    for name in document["components"]["headers"]:
        assert f'"#/components/headers/{name}"' in text
    for name in document["components"]["schemas"]:
        assert f'"#/components/schemas/{name}"' in text, f"{name} is declared and never used"
