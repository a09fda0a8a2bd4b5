"""The mint API's HTTP responses: domain errors mapped to statuses in exactly one place."""

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
    SandboxNotFoundError,
    ServiceUnavailableError,
    UnauthorizedError,
)

RETRY_AFTER_SECONDS = "5"
T = TypeVar("T")

STATUS_BY_ERROR: dict[type[PreviewError], HTTPStatus] = {
    InvalidRequestError: HTTPStatus.BAD_REQUEST,
    UnauthorizedError: HTTPStatus.UNAUTHORIZED,
    ForbiddenError: HTTPStatus.FORBIDDEN,
    SandboxNotFoundError: HTTPStatus.NOT_FOUND,
    InvalidScopeError: HTTPStatus.UNPROCESSABLE_ENTITY,
    InvalidExpiresInError: HTTPStatus.UNPROCESSABLE_ENTITY,
    ServiceUnavailableError: HTTPStatus.SERVICE_UNAVAILABLE,
}


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


def error_body(code: str, message: str, request_id: str, retry_after: str | None = None) -> dict[str, Any]:
    """The spec's error shape: the request id beside ``error``; a retryable error says when."""
    error: dict[str, Any] = {"code": code, "message": message}
    if retry_after:
        error.update(retryable=True, retry_after_ms=int(retry_after) * 1000)
    return {"error": error, "request_id": request_id}


def error_response(
    status: HTTPStatus, code: str, message: str, request_id: str, retry_after: str | None = None
) -> Response[dict[str, Any]]:
    response = json_response(status, error_body(code, message, request_id, retry_after), request_id)
    if retry_after:
        response.headers["Retry-After"] = retry_after
    if status is HTTPStatus.UNAUTHORIZED:
        response.headers["WWW-Authenticate"] = 'Bearer realm="preview-tokens"'
    return response


def response_for(error: PreviewError, request_id: str) -> Response[dict[str, Any]]:
    status = STATUS_BY_ERROR.get(type(error), HTTPStatus.INTERNAL_SERVER_ERROR)
    retry_after = RETRY_AFTER_SECONDS if status is HTTPStatus.SERVICE_UNAVAILABLE else None
    return error_response(status, error.code, error.message, request_id, retry_after)


def internal_error_response(request_id: str) -> Response[dict[str, Any]]:
    return error_response(
        HTTPStatus.INTERNAL_SERVER_ERROR,
        "internal_error",
        "An unexpected error occurred. Quote the X-Request-Id when reporting it.",
        request_id,
    )
