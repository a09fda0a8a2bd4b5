"""The hostile-body corpus against every operation of the OpenAPI document, in the handlers on moto.

Every operation reads its body with the one strict parser (``request_body``): each body of
:mod:`tests.support.hostile_bodies` answers 400, 413 or 415 with the error shape, never a 500,
and changes nothing (the token minted before the run is still live after it).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import mint_api
import pytest

from tests.support.deployment import SANDBOX, Deployment
from tests.support.events import lambda_context, load_event, set_header
from tests.support.hostile_bodies import CORPUS, REFUSED, HostileBody
from tests.support.responses import HttpResponse, from_proxy_result

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
OPERATIONS = sorted(
    (path, method.upper(), "requestBody" in operation)
    for path, methods in json.loads(DOCUMENT.read_text(encoding="utf-8"))["paths"].items()
    for method, operation in methods.items()
)


def request(
    path_template: str, method: str, credential: str, hostile: HostileBody, token_id: str
) -> HttpResponse:
    """The event API Gateway passes for this request (a body that is not UTF-8 arrives base64)."""
    parameters = {"id": SANDBOX, "token_id": token_id}
    path = path_template.format(**parameters)
    used = {name: value for name, value in parameters.items() if "{" + name + "}" in path_template}
    event: dict[str, Any] = load_event("list_sandbox_tokens", credential=credential)
    event.update(httpMethod=method, path=path, resource=path_template, pathParameters=used or None)
    event["requestContext"].update(httpMethod=method, resourcePath=path_template, path=f"/v1{path}")
    try:
        event.update(body=hostile.body.decode("utf-8"), isBase64Encoded=False)
    except UnicodeDecodeError:
        event.update(body=base64.b64encode(hostile.body).decode("ascii"), isBase64Encoded=True)
    event = set_header(event, "Content-Type", hostile.content_type)
    return from_proxy_result(mint_api.lambda_handler(event, lambda_context()))


def test_the_corpus_covers_every_operation_of_the_document() -> None:
    assert {(path, method) for path, method, _ in OPERATIONS} >= {
        ("/api/v1/sandboxes/{id}/preview-token", "POST"),
        ("/api/v1/preview-tokens/revoke", "POST"),
        ("/api/v1/sandboxes/{id}/preview-tokens", "GET"),
        ("/api/v1/sandboxes/{id}/preview-tokens", "DELETE"),
        ("/api/v1/sandboxes/{id}/preview-tokens/{token_id}", "DELETE"),
        ("/api/v1/origin-keys", "GET"),
    }


@pytest.mark.parametrize(("path", "method", "takes_json_body"), OPERATIONS)
def test_every_hostile_body_is_refused_by_every_operation_never_with_a_500(
    deployment: Deployment, path: str, method: str, takes_json_body: bool
) -> None:
    minted = from_proxy_result(
        mint_api.lambda_handler(load_event("mint_read", credential=deployment.api_key), lambda_context())
    ).json()
    answers: dict[str, tuple[int, str]] = {}
    for hostile in CORPUS:
        response = request(path, method, deployment.api_key, hostile, minted["id"])
        code = response.json()["error"]["code"] if response.body.startswith("{") else ""
        answers[hostile.name] = (response.status, code)
        assert response.status in REFUSED, (hostile.name, response.status, response.body[:200])
        assert response.header("X-Request-Id")
    expected = {
        hostile.name: (
            hostile.expected(takes_json_body),
            {400: "invalid_request", 413: "request_too_large", 415: "unsupported_media_type"}[
                hostile.expected(takes_json_body)
            ],
        )
        for hostile in CORPUS
    }
    assert answers == expected
    live = from_proxy_result(
        mint_api.lambda_handler(
            load_event("list_sandbox_tokens", credential=deployment.api_key), lambda_context()
        )
    ).json()["tokens"]
    assert minted["id"] in [token["id"] for token in live]
