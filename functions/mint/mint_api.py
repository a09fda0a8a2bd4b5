"""Mint API: ``POST /api/v1/sandboxes/{id}/preview-token`` (and its OpenAPI document)."""

from functools import cache
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from preview_tokens.dynamodb import default_client, dependency_call
from preview_tokens.errors import PreviewError, ServiceUnavailableError
from preview_tokens.http_responses import (
    error_response,
    internal_error_response,
    json_response,
    response_for,
)
from preview_tokens.mint import ErrorResponse, MintRequest, MintResponse, MintService
from preview_tokens.observability import logger, metrics
from preview_tokens.origin_key_admin import OriginKeyAdmin
from preview_tokens.settings import mint_settings
from preview_tokens.tracing import tracer

MINT_PATH = "/api/v1/sandboxes/<id>/preview-token"
OPENAPI_PATH = "/api/v1/openapi.json"
ORIGIN_KEYS_PATH = "/api/v1/origin-keys"
# The fleet caches the key set this long; a rotated key is published before it signs (README).
ORIGIN_KEYS_CACHE_CONTROL = "public, max-age=300"

app = APIGatewayRestResolver(enable_validation=True)


@cache
def mint_service() -> MintService:
    return MintService.from_settings(mint_settings())


def _request_id() -> str:
    return app.current_event.request_context.request_id or "unknown"


@app.post(
    MINT_PATH,
    summary="Mint a preview token",
    description="Signed, short-lived token for embedding the sandbox in an iframe. "
    "Auth: an API key or a JWT with the previews:write scope (Authorization: Bearer ...).",
    responses={
        200: {
            "description": "The token and its iframe URL",
            "content": {"application/json": {"model": MintResponse}},
        },
        **{
            status: {"description": codes, "content": {"application/json": {"model": ErrorResponse}}}
            for status, codes in (
                (400, "invalid_request"),
                (401, "unauthorized"),
                (403, "forbidden"),
                (404, "sandbox_not_found"),
                (422, "invalid_scope or invalid_expires_in"),
                (503, "unavailable (with Retry-After)"),
            )
        },
    },
    tags=["preview tokens"],
)
@tracer.capture_method(capture_response=False)
def mint_preview_token(id: str) -> Response[MintResponse]:
    minted = mint_service().mint(app.current_event.headers.get("Authorization"), id, app.current_event.body)
    metrics.add_metric(name="PreviewTokensMinted", unit=MetricUnit.Count, value=1)
    return json_response(HTTPStatus.OK, minted, _request_id())


@cache
def origin_keys() -> OriginKeyAdmin:
    return OriginKeyAdmin(mint_settings().signing_keys.table, default_client())


@app.get(
    ORIGIN_KEYS_PATH,
    summary="Public keys of the origin assertions",
    description="JSON Web Key Set (Ed25519, alg EdDSA) the sandbox fleet verifies the X-Preview-Assertion "
    "header with. Public; no credential needed.",
    responses={
        200: {"description": "The active origin assertion keys (JWKS)"},
        503: {
            "description": "unavailable (with Retry-After)",
            "content": {"application/json": {"model": ErrorResponse}},
        },
    },
    tags=["origin assertion"],
)
def origin_key_set() -> Response[dict[str, Any]]:
    try:
        with dependency_call("Query"):
            jwks = origin_keys().jwks()
    except (KeyError, TypeError):  # an item not shaped like an origin key
        logger.warning("malformed origin key item")
        raise ServiceUnavailableError() from None
    response: Response[dict[str, Any]] = json_response(HTTPStatus.OK, jwks, _request_id())
    response.headers["Cache-Control"] = ORIGIN_KEYS_CACHE_CONTROL
    return response


@app.get(OPENAPI_PATH, include_in_schema=False)
def openapi_document() -> Response[dict[str, Any]]:
    return json_response(HTTPStatus.OK, build_openapi(), _request_id())


def build_openapi() -> dict[str, Any]:
    """The mint API's OpenAPI document, generated from the routes and the pydantic models."""
    document: dict[str, Any] = app.get_openapi_schema(
        title="Preview tokens API",
        version="1.0.0",
        description="Mint short-lived preview tokens for embedding sandboxes in iframes.",
        security_schemes={"bearer": {"type": "http", "scheme": "bearer"}},  # type: ignore[dict-item]
        security=[{"bearer": []}],
    ).model_dump(mode="json", by_alias=True, exclude_none=True)
    operation = document["paths"]["/api/v1/sandboxes/{id}/preview-token"]["post"]
    operation["requestBody"] = {
        "required": False,
        "content": {"application/json": {"schema": MintRequest.model_json_schema()}},
    }
    origin_keys_operation = document["paths"][ORIGIN_KEYS_PATH]["get"]
    origin_keys_operation["security"] = []  # public: the fleet fetches it without a credential
    origin_keys_operation["responses"].pop("422", None)  # it takes no input to validate
    return document


@app.exception_handler(PreviewError)  # type: ignore[untyped-decorator]
def handle_preview_error(error: PreviewError) -> Response[dict[str, Any]]:
    return response_for(error, _request_id())


@app.not_found
def handle_not_found(_: Exception) -> Response[dict[str, Any]]:
    return error_response(HTTPStatus.NOT_FOUND, "not_found", "No such route.", _request_id())


@app.exception_handler(Exception)  # type: ignore[untyped-decorator]
def handle_unexpected(error: Exception) -> Response[dict[str, Any]]:
    logger.exception("unexpected error", extra={"error_type": type(error).__name__})
    return internal_error_response(_request_id())


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
