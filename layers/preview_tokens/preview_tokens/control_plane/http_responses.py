"""The mint API's HTTP responses: domain errors mapped to statuses in exactly one place.

Every error body is ``{"error": {"code", "message"}, "request_id"}`` (spec part 2, "Errors": the
published SDKs read the top-level ``request_id``); a 429 or 503 body also carries, inside
``error``, ``"retryable": true`` and ``retry_after_ms`` equal to the ``Retry-After`` header.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, TypeVar

from aws_lambda_powertools.event_handler import Response, content_types

from preview_tokens.errors import (
    ForbiddenError,
    InvalidExpiresInError,
    InvalidRequestError,
    InvalidScopeError,
    PreviewError,
    RateLimitedError,
    RequestTooLargeError,
    SandboxNotFoundError,
    ServiceUnavailableError,
    TokenNotFoundError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
)

RETRY_AFTER_SECONDS = 5
T = TypeVar("T")

STATUS_BY_ERROR: dict[type[PreviewError], HTTPStatus] = {
    InvalidRequestError: HTTPStatus.BAD_REQUEST,
    UnauthorizedError: HTTPStatus.UNAUTHORIZED,
    ForbiddenError: HTTPStatus.FORBIDDEN,
    SandboxNotFoundError: HTTPStatus.NOT_FOUND,
    TokenNotFoundError: HTTPStatus.NOT_FOUND,
    RequestTooLargeError: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    UnsupportedMediaTypeError: HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
    InvalidScopeError: HTTPStatus.UNPROCESSABLE_ENTITY,
    InvalidExpiresInError: HTTPStatus.UNPROCESSABLE_ENTITY,
    RateLimitedError: HTTPStatus.TOO_MANY_REQUESTS,
    ServiceUnavailableError: HTTPStatus.SERVICE_UNAVAILABLE,
}
RETRYABLE = frozenset({HTTPStatus.TOO_MANY_REQUESTS, HTTPStatus.SERVICE_UNAVAILABLE})


def base_headers(request_id: str) -> dict[str, str]:
    return {"X-Request-Id": request_id, "Cache-Control": "no-store"}


def json_response(status: HTTPStatus, body: T, request_id: str) -> Response[T]:
    """A JSON response; Powertools serializes ``body`` (a dict or a pydantic model)."""
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=body,
        headers=base_headers(request_id),
    )


def empty_response(status: HTTPStatus, request_id: str) -> Response[str]:
    """A response without a body (``204 No Content``)."""
    return Response(status_code=status, body="", headers=base_headers(request_id))


def error_response(
    status: HTTPStatus, code: str, message: str, request_id: str, retry_after: int | None = None
) -> Response[dict[str, Any]]:
    error: dict[str, Any] = {"code": code, "message": message}
    if status in RETRYABLE:
        retry_after = retry_after or RETRY_AFTER_SECONDS
        error.update(retryable=True, retry_after_ms=retry_after * 1000)
    response = json_response(status, {"error": error, "request_id": request_id}, request_id)
    if status in RETRYABLE:
        response.headers["Retry-After"] = str(retry_after)
    if status is HTTPStatus.UNAUTHORIZED:
        response.headers["WWW-Authenticate"] = 'Bearer realm="preview-tokens"'
    return response


def status_for(error: PreviewError) -> HTTPStatus:
    for error_type in type(error).__mro__:
        if error_type in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[error_type]
    return HTTPStatus.INTERNAL_SERVER_ERROR


def response_for(error: PreviewError, request_id: str) -> Response[dict[str, Any]]:
    retry_after = error.retry_after if isinstance(error, RateLimitedError) else None
    return error_response(status_for(error), error.code, error.message, request_id, retry_after)


def internal_error_response(request_id: str) -> Response[dict[str, Any]]:
    return error_response(
        HTTPStatus.INTERNAL_SERVER_ERROR,
        "internal_error",
        "An unexpected error occurred. Quote the X-Request-Id when reporting it.",
        request_id,
    )
