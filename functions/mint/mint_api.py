"""Mint API: ``POST /api/v1/sandboxes/{id}/preview-token``, the token lifecycle endpoints
(revoke a token, revoke a sandbox's tokens, list its live tokens) and the OpenAPI document.

The resolver runs without Powertools' pydantic validation, and no pydantic model is imported on
a request's path: bodies are checked by hand (``MintBody``, ``token_to_revoke``). The pydantic
models in :mod:`preview_tokens.control_plane.api_models` document the bodies; :func:`build_openapi` imports
them only when the document is asked for. This keeps the cold start within its budget (README
"Performance").
"""

import base64
import json
from functools import cache
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from preview_tokens import observability
from preview_tokens.control_plane.http_responses import (
    empty_response,
    error_response,
    internal_error_response,
    json_response,
    response_for,
)
from preview_tokens.control_plane.mint import MintService
from preview_tokens.control_plane.request_body import require_no_body
from preview_tokens.control_plane.token_lifecycle import (
    TokenLifecycle,
    lifecycle_from_settings,
    token_to_revoke,
)
from preview_tokens.errors import InvalidRequestError, PreviewError, ServiceUnavailableError
from preview_tokens.observability import logger, metrics
from preview_tokens.settings import mint_settings

if TYPE_CHECKING:
    from preview_tokens.operator.origin_key_admin import OriginKeyAdmin

MINT_PATH = "/api/v1/sandboxes/<id>/preview-token"
MINT_RESOURCE = "/api/v1/sandboxes/{id}/preview-token"  # API Gateway's name of the mint route
TOKENS_PATH = "/api/v1/sandboxes/<id>/preview-tokens"
TOKEN_PATH = "/api/v1/sandboxes/<id>/preview-tokens/<token_id>"
REVOKE_PATH = "/api/v1/preview-tokens/revoke"
OPENAPI_PATH = "/api/v1/openapi.json"
ORIGIN_KEYS_PATH = "/api/v1/origin-keys"
# The fleet caches the key set this long; a rotated key is published before it signs (README).
ORIGIN_KEYS_CACHE_CONTROL = "public, max-age=300"

app = APIGatewayRestResolver()


@cache
def mint_service() -> MintService:
    return MintService.from_settings(mint_settings())


@cache
def token_lifecycle() -> TokenLifecycle:
    return lifecycle_from_settings(mint_settings(), mint_service().minter.signing_keys)


def _responses(*statuses: tuple[int, str]) -> dict[int, OpenAPIResponse]:
    return {status: {"description": text} for status, text in statuses}


_AUTH_ERRORS = ((401, "unauthorized"), (403, "forbidden (no previews:write, tenant disabled)"))
_UNAVAILABLE = (503, "unavailable (with Retry-After)")
# Every operation reads its body with the one strict parser (request_body): bounded, one JSON object.
_JSON_BODY_ERRORS = (
    (413, "request_too_large (over 16 KiB)"),
    (415, "unsupported_media_type (not application/json)"),
)
_NO_BODY_ERRORS = ((400, "invalid_request (this operation takes no body)"), (413, "request_too_large"))


def _request_id() -> str:
    return app.current_event.request_context.request_id or "unknown"


def _body() -> str | None:
    """The raw request body as text; a base64-encoded body that is not UTF-8 is a 400."""
    event = app.current_event
    if not event.is_base64_encoded or not event.body:
        return event.body
    try:
        return base64.b64decode(event.body, validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):  # binascii.Error is a ValueError
        raise InvalidRequestError("The request body is not UTF-8 JSON.") from None


def _content_type() -> str | None:
    content_type: str | None = app.current_event.headers.get("Content-Type")
    return content_type


def _no_body() -> None:
    """Operations without a request body refuse one: the same parser's answers (413 or 400)."""
    require_no_body(_body())


def _authorization() -> str | None:
    """The one ``Authorization`` header; two or more are no credential (401), not the last one."""
    sent = app.current_event.multi_value_headers or {}
    if sum(len(values or ()) for name, values in sent.items() if name.lower() == "authorization") > 1:
        return None
    authorization: str | None = app.current_event.headers.get("Authorization")
    return authorization


@app.post(
    MINT_PATH,
    summary="Mint a preview token",
    description="Signed, short-lived token for embedding the sandbox in an iframe. "
    "Auth: an API key or a JWT with the previews:write scope (Authorization: Bearer ...).",
    responses=_responses(
        (200, "The token and its iframe URL"),
        (400, "invalid_request"),
        *_AUTH_ERRORS,
        (404, "sandbox_not_found"),
        *_JSON_BODY_ERRORS,
        (422, "invalid_scope or invalid_expires_in"),
        (429, "rate_limited (with Retry-After)"),
        _UNAVAILABLE,
    ),
    tags=["preview tokens"],
)
def mint_preview_token(id: str) -> Response[dict[str, str]]:
    minted = mint_service().mint(_authorization(), id, _body(), _request_id(), _content_type())
    observability.count(observability.TOKENS_MINTED, ("Scope", minted.scope))
    return json_response(HTTPStatus.OK, minted.as_json(), _request_id())


@app.post(
    REVOKE_PATH,
    summary="Revoke a preview token",
    description="As RFC 7009: 200 {} whether the token was live, unknown, expired, already revoked or "
    "another tenant's; only the caller's own live token is revoked. Effective on the data plane within 5 s.",
    responses=_responses(
        (200, "Done (or nothing to do)"),
        (400, "invalid_request"),
        *_AUTH_ERRORS,
        *_JSON_BODY_ERRORS,
        _UNAVAILABLE,
    ),
    tags=["preview tokens"],
)
def revoke_preview_token() -> Response[dict[str, Any]]:
    caller = mint_service().credentials.authenticate(_authorization())
    caller.require_previews_write("revocation")
    token = token_to_revoke(_body(), _content_type())
    token_lifecycle().revoke_token(caller, token, _request_id())
    observability.count(observability.REVOCATIONS, ("Kind", "token"))
    return json_response(HTTPStatus.OK, {}, _request_id())


@app.delete(
    TOKENS_PATH,
    summary="Revoke every preview token of a sandbox",
    description="Every token minted for this sandbox until now stops working within 5 s.",
    responses=_responses(
        (204, "Revoked"), *_NO_BODY_ERRORS, *_AUTH_ERRORS, (404, "sandbox_not_found"), _UNAVAILABLE
    ),
    tags=["preview tokens"],
)
def revoke_sandbox_preview_tokens(id: str) -> Response[str]:
    caller = mint_service().credentials.authenticate(_authorization())
    caller.require_previews_write("lifecycle call")
    _no_body()
    token_lifecycle().revoke_sandbox_tokens(caller, id, _request_id())
    observability.count(observability.REVOCATIONS, ("Kind", "sandbox"))
    return empty_response(HTTPStatus.NO_CONTENT, _request_id())


@app.delete(
    TOKEN_PATH,
    summary="Revoke one preview token of a sandbox",
    description="The token with this id (as the list of live tokens shows it) stops working within 5 s. "
    "204 also when it was already revoked or has expired.",
    responses=_responses(
        (204, "Revoked (or already revoked or expired)"),
        *_NO_BODY_ERRORS,
        *_AUTH_ERRORS,
        (404, "sandbox_not_found, or token_not_found: no token with this id was minted for this sandbox"),
        _UNAVAILABLE,
    ),
    tags=["preview tokens"],
)
def revoke_sandbox_preview_token(id: str, token_id: str) -> Response[str]:
    caller = mint_service().credentials.authenticate(_authorization())
    caller.require_previews_write("lifecycle call")
    _no_body()
    token_lifecycle().revoke_sandbox_token(caller, id, token_id, _request_id())
    observability.count(observability.REVOCATIONS, ("Kind", "token"))
    return empty_response(HTTPStatus.NO_CONTENT, _request_id())


@app.get(
    TOKENS_PATH,
    summary="List a sandbox's live preview tokens",
    description="Not expired and not revoked; never the token itself.",
    responses=_responses(
        (200, "The live tokens"), *_NO_BODY_ERRORS, *_AUTH_ERRORS, (404, "sandbox_not_found"), _UNAVAILABLE
    ),
    tags=["preview tokens"],
)
def list_sandbox_preview_tokens(id: str) -> Response[dict[str, Any]]:
    caller = mint_service().credentials.authenticate(_authorization())
    caller.require_previews_write("lifecycle call")
    _no_body()
    tokens = token_lifecycle().live_tokens(caller, id)
    return json_response(HTTPStatus.OK, {"tokens": tokens}, _request_id())


@cache
def origin_keys() -> "OriginKeyAdmin":
    # Imported on the first JWKS request only: boto3 is not on the mint's cold-start path.
    from preview_tokens.keys.dynamodb import default_client
    from preview_tokens.operator.origin_key_admin import OriginKeyAdmin

    return OriginKeyAdmin(mint_settings().signing_keys.table, default_client())


@app.get(
    ORIGIN_KEYS_PATH,
    summary="Public keys of the origin assertions",
    description="JSON Web Key Set (Ed25519, alg EdDSA) the sandbox fleet verifies the X-Preview-Assertion "
    "header with. Public; no credential needed.",
    responses=_responses((200, "The active origin assertion keys (JWKS)"), *_NO_BODY_ERRORS, _UNAVAILABLE),
    tags=["origin assertion"],
)
def origin_key_set() -> Response[dict[str, Any]]:
    _no_body()
    try:
        from preview_tokens.keys.dynamodb import dependency_call

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
    _no_body()
    return json_response(HTTPStatus.OK, build_openapi(), _request_id())


def build_openapi() -> dict[str, Any]:
    """The API's OpenAPI document: routes from the resolver, bodies from the pydantic models."""
    from preview_tokens.control_plane import api_models
    from pydantic import BaseModel

    document: dict[str, Any] = app.get_openapi_schema(
        title="Preview tokens API",
        version="1.0.0",
        description="Mint short-lived preview tokens for embedding sandboxes in iframes, "
        "revoke them, and list the live ones.",
        security_schemes={"bearer": {"type": "http", "scheme": "bearer"}},  # type: ignore[dict-item]
        security=[{"bearer": []}],
    ).model_dump(mode="json", by_alias=True, exclude_none=True)
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})

    def reference(model: type[BaseModel]) -> dict[str, Any]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
        return {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}

    bodies: dict[tuple[str, str], tuple[type[BaseModel] | None, type[BaseModel] | None]] = {
        ("/api/v1/sandboxes/{id}/preview-token", "post"): (api_models.MintRequest, api_models.MintResponse),
        ("/api/v1/preview-tokens/revoke", "post"): (api_models.RevokeRequest, None),
        ("/api/v1/sandboxes/{id}/preview-tokens", "delete"): (None, None),
        ("/api/v1/sandboxes/{id}/preview-tokens/{token_id}", "delete"): (None, None),
        ("/api/v1/sandboxes/{id}/preview-tokens", "get"): (None, api_models.LiveTokens),
    }
    for (path, method), (request, answer) in bodies.items():
        operation = document["paths"][path][method]
        if request is not None:  # inline, as clients read a request body's fields in place
            operation["requestBody"] = {
                "required": request is api_models.RevokeRequest,
                "content": {"application/json": {"schema": request.model_json_schema()}},
            }
        for status, response in operation["responses"].items():
            if status == "200":
                response["content"] = (
                    reference(answer) if answer else {"application/json": {"schema": {"type": "object"}}}
                )
            elif status.startswith(("4", "5")):
                response["content"] = reference(api_models.ErrorResponse)
            else:
                response.pop("content", None)
    origin_keys_operation = document["paths"][ORIGIN_KEYS_PATH]["get"]
    for status, response in origin_keys_operation["responses"].items():
        if status.startswith(("4", "5")):
            response["content"] = reference(api_models.ErrorResponse)
    origin_keys_operation["security"] = []  # public: the fleet fetches it without a credential
    origin_keys_operation["responses"].pop("422", None)  # it takes no input to validate
    _declare_response_headers(document)
    _drop_unreferenced_schemas(document)
    return document


_RESPONSE_HEADERS = {
    "X-Request-Id": ("The request's id, also in every error body's request_id", {"type": "string"}),
    "Cache-Control": ("no-store (the origin keys: public, with a max-age)", {"type": "string"}),
    "WWW-Authenticate": ('Bearer realm="preview-tokens"', {"type": "string"}),
    "Retry-After": ("Seconds to wait before retrying", {"type": "integer", "minimum": 0}),
}
_HEADERS_BY_STATUS = {"401": ("WWW-Authenticate",), "429": ("Retry-After",), "503": ("Retry-After",)}


def _declare_response_headers(document: dict[str, Any]) -> None:
    """The headers a client reads: ``X-Request-Id`` and ``Cache-Control`` on every answer,
    ``WWW-Authenticate`` on a 401, ``Retry-After`` on a 429 and a 503."""
    document["components"]["headers"] = {
        name: {"description": description, "schema": schema}
        for name, (description, schema) in _RESPONSE_HEADERS.items()
    }
    for operations in document["paths"].values():
        for operation in operations.values():
            for status, response in operation["responses"].items():
                names = ("X-Request-Id", "Cache-Control", *_HEADERS_BY_STATUS.get(status, ()))
                response["headers"] = {name: {"$ref": f"#/components/headers/{name}"} for name in names}


def _drop_unreferenced_schemas(document: dict[str, Any]) -> None:
    """Only the schemas a response or request refers to, directly or through another schema (the
    resolver adds its own validation-error schemas, which no answer of this API has)."""
    schemas: dict[str, Any] = document["components"]["schemas"]
    wanted: set[str] = set()
    pending: list[Any] = [document["paths"]]
    while pending:
        text = json.dumps(pending.pop())
        for name, schema in schemas.items():
            if name not in wanted and f'"#/components/schemas/{name}"' in text:
                wanted.add(name)
                pending.append(schema)
    for name in set(schemas) - wanted:
        del schemas[name]


@app.exception_handler(PreviewError)  # type: ignore[untyped-decorator]
def handle_preview_error(error: PreviewError) -> Response[dict[str, Any]]:
    if app.current_event.resource == MINT_RESOURCE.replace("<id>", "{id}"):
        observability.count(observability.MINT_REFUSALS, ("ErrorCode", error.code))
        if error.code == "rate_limited":
            observability.count(observability.MINTS_RATE_LIMITED)
    return response_for(error, _request_id())


@app.not_found
def handle_not_found(_: Exception) -> Response[dict[str, Any]]:
    return error_response(HTTPStatus.NOT_FOUND, "not_found", "No such route.", _request_id())


@app.exception_handler(Exception)  # type: ignore[untyped-decorator]
def handle_unexpected(error: Exception) -> Response[dict[str, Any]]:
    logger.exception("unexpected error", extra={"error_type": type(error).__name__})
    if app.current_event.resource == MINT_RESOURCE:
        observability.count(observability.MINT_REFUSALS, ("ErrorCode", "internal_error"))
    return internal_error_response(_request_id())


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
