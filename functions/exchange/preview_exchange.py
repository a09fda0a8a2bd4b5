"""The ``?mt=`` exchange: set the session cookie the route's authorizer granted, redirect without ``mt``.

Served on ``/__preview/exchange/{proxy+}`` (and the bare prefix for ``/``), where the edge
sends every ``?mt=`` document request, with ``mt`` taken off the query and its value in
``X-Preview-Token``. The route's REQUEST authorizer (``exchange_authorizer``, identity source
that header, no cache) verifies the token and always allows, its context carrying either the
verified token and claims or the denial's reason: this function sets cookies only from that
context (none: ``invalid_token``) and renders a refusal as the access-denied page, with the
tenant's frame-ancestors that an API Gateway error page cannot carry. The redirect goes through
``/__preview/cookie-check/{proxy+}``, also served here: with the session cookie back it
redirects on to the page, without it answers the cookies-blocked page. For a renewal (the embed
helper's hidden frame at ``/__preview/exchange/__preview/renewed?mt=``) the check answers the
renewed page, which posts ``preview.renewed`` to the helper, instead of redirecting.

It also renders the denial page on ``/__preview/denied`` (any method), where the edge function
sends every request it refuses, the reason in ``x-preview-denial``: status 403 (503 for
``unavailable``), the event posted to the parent, and the sandbox's tenant's CSP
``frame-ancestors`` (no viewer-response function runs on a status of 400 or more). Every page
this function answers carries that tenant's ``frame-ancestors`` (the default for an unknown
sandbox, or when the tenant cannot be read).
"""

from __future__ import annotations

import math
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from aws_lambda_powertools.utilities.typing import LambdaContext
from preview_tokens import observability
from preview_tokens.data_plane.access import DenialReason
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
    DENIAL_HEADER,
    DENIAL_SANDBOX_HEADER,
    DENIED_PATH,
    ExchangeDenied,
    SessionRenewed,
    check_session_cookie,
    grant_from_context,
)
from preview_tokens.data_plane.wiring import first_use_recorder, frame_ancestors
from preview_tokens.observability import logger
from preview_tokens.settings import SettingsError, data_plane_settings


def _embedding_origin(headers: dict[str, str]) -> str | None:
    """``Origin``, else ``Referer`` (a framed navigation sends no ``Origin``); the audit trail keeps
    only its ``scheme://host[:port]`` (:func:`preview_tokens.control_plane.audit.embedding_origin`)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    origin = lowered.get("origin")
    return origin if origin and origin != "null" else lowered.get("referer")


def _header(request: APIGatewayProxyEvent, name: str) -> str:
    """A request header, its name compared case-insensitively (CloudFront sends lower case)."""
    lowered = name.lower()
    for key, value in (request.headers or {}).items():
        if key.lower() == lowered:
            return str(value)
    return ""


def _host(request: APIGatewayProxyEvent) -> str:
    return _header(request, "Host") or request.request_context.domain_name or ""


def _host_sandbox(request: APIGatewayProxyEvent) -> str:
    """The sandbox id the host names (its first label), lower-cased."""
    return _host(request).split(".", 1)[0].strip().lower()


def page_frame_ancestors(request: APIGatewayProxyEvent, reason: DenialReason | None = None) -> str:
    """The frame-ancestors of the host's sandbox's tenant; the default when it cannot be read.

    For ``unavailable`` (a store is failing) the default, without trying the store again.
    """
    try:
        resolver = frame_ancestors()
    except SettingsError:  # a miswired function still answers its page (see _stack_frame_ancestors)
        return _stack_frame_ancestors()
    if resolver is None or reason is DenialReason.UNAVAILABLE:
        return _stack_frame_ancestors()
    try:
        return resolver.for_sandbox(_host_sandbox(request))
    except Exception as error:  # a denial page still renders, with the stack's default
        logger.warning("frame ancestors not read", extra={"error_type": type(error).__name__})
        return resolver.default


def _stack_frame_ancestors() -> str:
    """The stack's default frame-ancestors; ``'none'`` when the settings cannot be read (a
    miswired function answers its 503 page then, never a 500)."""
    try:
        return data_plane_settings().frame_ancestors
    except SettingsError:
        return "'none'"


def _security_headers(ancestors: str, script_hash: str = SCRIPT_HASH) -> dict[str, str]:
    return {
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": content_security_policy(ancestors, script_hash),
        "X-Content-Type-Options": "nosniff",
    }


def denied_response(denied: ExchangeDenied, ancestors: str | None = None) -> dict[str, Any]:
    logger.info(
        "preview exchange denied", extra={"reason": denied.reason.value, "sandbox_id": denied.sandbox_id}
    )
    ancestors = ancestors or _stack_frame_ancestors()
    if denied.reason is DenialReason.COOKIES_BLOCKED:
        headers, body = _security_headers(ancestors, COOKIES_BLOCKED_SCRIPT_HASH), cookies_blocked_page()
    else:
        headers, body = (
            _security_headers(ancestors),
            render_page(denial_for(denied.reason, denied.sandbox_id)),
        )
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
        return denied_response(outcome, page_frame_ancestors(request, outcome.reason))
    if isinstance(outcome, SessionRenewed):
        logger.info("preview session renewed")
        return {
            "statusCode": int(HTTPStatus.OK),
            "headers": {
                **_security_headers(page_frame_ancestors(request)),
                "Content-Type": "text/html; charset=utf-8",
            },
            "body": renewed_page(outcome.expires_at),
        }
    return {
        "statusCode": int(HTTPStatus.FOUND),
        "headers": {**_security_headers(page_frame_ancestors(request)), "Location": outcome},
        "body": "",
    }


def denial_page(request: APIGatewayProxyEvent) -> dict[str, Any]:
    """The page for a request the edge refused: the reason it sent, never anything else of the request.

    An unknown or missing reason (a request that did not come through the edge) is ``no_token``. The
    sandbox id is named only when the edge says a verified token proved it and it is this host's.
    """
    try:
        reason = DenialReason(_header(request, DENIAL_HEADER).strip())
    except ValueError:
        reason = DenialReason.NO_TOKEN
    proven = _header(request, DENIAL_SANDBOX_HEADER).strip()
    sandbox_id = proven if proven and proven == _host_sandbox(request) else None
    return denied_response(ExchangeDenied(reason, sandbox_id), page_frame_ancestors(request, reason))


# Every line tagged with this function's own name and request (Lambda's context), not a stale one.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    observability.tag_request(event.get("headers"), (event.get("requestContext") or {}).get("requestId"))
    request = APIGatewayProxyEvent(event)
    if request.resource.startswith(DENIED_PATH):
        return denial_page(request)
    if request.resource.startswith(COOKIE_CHECK_PATH):
        return cookie_check(request)
    query: dict[str, list[str]] = dict(request.multi_value_query_string_parameters or {})
    # The route's authorizer verified X-Preview-Token (exchange_authorizer): its context is the
    # only source of the session; the token is not verified again here. No context: invalid_token.
    outcome = grant_from_context(
        (event.get("requestContext") or {}).get("authorizer"),
        (request.path_parameters or {}).get("proxy", ""),
        query,
    )
    if isinstance(outcome, ExchangeDenied):
        return denied_response(outcome, page_frame_ancestors(request, outcome.reason))
    grant, token = outcome
    logger.info(
        "preview session started",
        extra={"sandbox_id": grant.claims.sandbox_id, "scope": grant.claims.scope.value},
    )
    observability.count(observability.EXCHANGES)
    try:
        first_use_recorder().record(
            grant.claims, _embedding_origin(dict(request.headers or {})), request.request_context.request_id
        )
    except Exception as error:  # audit is not a gate: the session still starts
        logger.error("first use not recorded", extra={"error_type": type(error).__name__})
    return {
        "statusCode": int(HTTPStatus.FOUND),
        "headers": {**_security_headers(page_frame_ancestors(request)), "Location": grant.location},
        "multiValueHeaders": {"Set-Cookie": grant.set_cookies(token)},
        "body": "",
    }
