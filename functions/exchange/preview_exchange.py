"""The ``?mt=`` exchange: verify the token, set the session cookie, redirect without ``mt``.

Served on ``/__preview/exchange/{proxy+}`` (and the bare prefix for ``/``), where the edge
sends every ``?mt=`` document request. A bad token gets the access-denied page.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from aws_lambda_powertools.utilities.typing import LambdaContext
from preview_tokens.access import DenialReason
from preview_tokens.data_plane import first_use_recorder, preview_gate
from preview_tokens.denial_page import content_security_policy, denial_for, render_page
from preview_tokens.exchange import TOKEN_PARAMETER, ExchangeDenied, exchange_token
from preview_tokens.observability import logger
from preview_tokens.settings import data_plane_settings

RETRY_AFTER_SECONDS = 5


def _embedding_origin(headers: dict[str, str]) -> str | None:
    """``Origin``, else the origin part of ``Referer`` (a framed navigation sends no ``Origin``)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    return lowered.get("origin") or lowered.get("referer")


def _security_headers() -> dict[str, str]:
    return {
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": content_security_policy(data_plane_settings().frame_ancestors),
        "X-Content-Type-Options": "nosniff",
    }


def denied_response(denied: ExchangeDenied) -> dict[str, Any]:
    status = (
        HTTPStatus.SERVICE_UNAVAILABLE if denied.reason is DenialReason.UNAVAILABLE else HTTPStatus.FORBIDDEN
    )
    logger.info(
        "preview exchange denied", extra={"reason": denied.reason.value, "sandbox_id": denied.sandbox_id}
    )
    headers = {**_security_headers(), "Content-Type": "text/html; charset=utf-8"}
    if status is HTTPStatus.SERVICE_UNAVAILABLE:
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return {
        "statusCode": int(status),
        "headers": headers,
        "body": render_page(denial_for(denied.reason, denied.sandbox_id)),
    }


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = APIGatewayProxyEvent(event)
    query: dict[str, list[str]] = dict(request.multi_value_query_string_parameters or {})
    tokens = query.get(TOKEN_PARAMETER) or []
    host = (request.headers or {}).get("Host") or request.request_context.domain_name or ""
    try:
        outcome = exchange_token(
            preview_gate(),
            tokens[-1] if tokens else None,
            host,
            (request.path_parameters or {}).get("proxy", ""),
            query,
        )
    except Exception as error:
        logger.exception("exchange failed closed", extra={"error_type": type(error).__name__})
        outcome = ExchangeDenied(DenialReason.UNAVAILABLE, None)
    if isinstance(outcome, ExchangeDenied):
        return denied_response(outcome)
    logger.info(
        "preview session started",
        extra={"sandbox_id": outcome.claims.sandbox_id, "scope": outcome.claims.scope.value},
    )
    try:
        first_use_recorder().record(
            outcome.claims, _embedding_origin(dict(request.headers or {})), request.request_context.request_id
        )
    except Exception as error:  # audit is not a gate: the session still starts
        logger.error("first use not recorded", extra={"error_type": type(error).__name__})
    return {
        "statusCode": int(HTTPStatus.FOUND),
        "headers": {**_security_headers(), "Location": outcome.location},
        "multiValueHeaders": {"Set-Cookie": outcome.set_cookies(tokens[-1])},
        "body": "",
    }
