"""The ``?mt=`` exchange: verify the token, set the session cookie, redirect without ``mt``.

Served on ``/__preview/exchange/{proxy+}`` (and the bare prefix for ``/``), where the edge
sends every ``?mt=`` document request, with ``mt`` taken off the query and its value in
``X-Preview-Token``. A bad token gets the access-denied page. The redirect goes through
``/__preview/cookie-check/{proxy+}``, also served here: with the session cookie back it
redirects on to the page, without it answers the cookies-blocked page. For a renewal (the embed
helper's hidden frame at ``/__preview/exchange/__preview/renewed?mt=``) the check answers the
renewed page, which posts ``preview.renewed`` to the helper, instead of redirecting.
"""

from __future__ import annotations

import math
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from aws_lambda_powertools.utilities.typing import LambdaContext
from preview_tokens import observability
from preview_tokens.data_plane.access import DenialReason, fallback_token
from preview_tokens.data_plane.denial_page import (
    COOKIES_BLOCKED_SCRIPT_HASH,
    SCRIPT_HASH,
    content_security_policy,
    cookies_blocked_page,
    denial_for,
    render_page,
    renewed_page,
)
from preview_tokens.data_plane.exchange import (
    COOKIE_CHECK_PATH,
    ExchangeDenied,
    SessionRenewed,
    check_session_cookie,
    exchange_token,
)
from preview_tokens.data_plane.wiring import first_use_recorder, preview_gate
from preview_tokens.observability import logger
from preview_tokens.settings import data_plane_settings


def _embedding_origin(headers: dict[str, str]) -> str | None:
    """``Origin``, else ``Referer`` (a framed navigation sends no ``Origin``); the audit trail keeps
    only its ``scheme://host[:port]`` (:func:`preview_tokens.control_plane.audit.embedding_origin`)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    origin = lowered.get("origin")
    return origin if origin and origin != "null" else lowered.get("referer")


def _security_headers(script_hash: str = SCRIPT_HASH) -> dict[str, str]:
    return {
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": content_security_policy(
            data_plane_settings().frame_ancestors, script_hash
        ),
        "X-Content-Type-Options": "nosniff",
    }


def denied_response(denied: ExchangeDenied) -> dict[str, Any]:
    logger.info(
        "preview exchange denied", extra={"reason": denied.reason.value, "sandbox_id": denied.sandbox_id}
    )
    if denied.reason is DenialReason.COOKIES_BLOCKED:
        headers, body = _security_headers(COOKIES_BLOCKED_SCRIPT_HASH), cookies_blocked_page()
    else:
        headers, body = _security_headers(), render_page(denial_for(denied.reason, denied.sandbox_id))
    headers["Content-Type"] = "text/html; charset=utf-8"
    status = HTTPStatus.FORBIDDEN
    observability.count(observability.DENIALS, ("Reason", denied.reason.value))
    if denied.reason is DenialReason.UNAVAILABLE:
        status = HTTPStatus.SERVICE_UNAVAILABLE
        headers["Retry-After"] = str(max(1, math.ceil(denied.retry_after_seconds)))
    return {"statusCode": int(status), "headers": headers, "body": body}


def _cookie_header(request: APIGatewayProxyEvent) -> str:
    """Every Cookie header of the request, joined (HTTP/2 clients may send several)."""
    for name, values in (request.multi_value_headers or {}).items():
        if name.lower() == "cookie":
            return "; ".join(values)
    for name, value in (request.headers or {}).items():
        if name.lower() == "cookie":
            return str(value)
    return ""


def cookie_check(request: APIGatewayProxyEvent) -> dict[str, Any]:
    """After the exchange's redirect: on to the page if the session cookie came back."""
    query: dict[str, list[str]] = dict(request.multi_value_query_string_parameters or {})
    outcome = check_session_cookie(
        _cookie_header(request), (request.path_parameters or {}).get("proxy", ""), query
    )
    if isinstance(outcome, ExchangeDenied):
        return denied_response(outcome)
    if isinstance(outcome, SessionRenewed):
        logger.info("preview session renewed")
        return {
            "statusCode": int(HTTPStatus.OK),
            "headers": {**_security_headers(), "Content-Type": "text/html; charset=utf-8"},
            "body": renewed_page(outcome.expires_at),
        }
    return {
        "statusCode": int(HTTPStatus.FOUND),
        "headers": {**_security_headers(), "Location": outcome},
        "body": "",
    }


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    observability.tag_request(event.get("headers"), (event.get("requestContext") or {}).get("requestId"))
    request = APIGatewayProxyEvent(event)
    if request.resource.startswith(COOKIE_CHECK_PATH):
        return cookie_check(request)
    query: dict[str, list[str]] = dict(request.multi_value_query_string_parameters or {})
    token = fallback_token(event.get("headers")) or ""
    host = (request.headers or {}).get("Host") or request.request_context.domain_name or ""
    try:
        outcome = exchange_token(
            preview_gate(),
            token,
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
    observability.count(observability.EXCHANGES)
    try:
        first_use_recorder().record(
            outcome.claims, _embedding_origin(dict(request.headers or {})), request.request_context.request_id
        )
    except Exception as error:  # audit is not a gate: the session still starts
        logger.error("first use not recorded", extra={"error_type": type(error).__name__})
    return {
        "statusCode": int(HTTPStatus.FOUND),
        "headers": {**_security_headers(), "Location": outcome.location},
        "multiValueHeaders": {"Set-Cookie": outcome.set_cookies(token)},
        "body": "",
    }
