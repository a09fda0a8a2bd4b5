"""Data-plane REQUEST authorizer: runs before every request to a sandbox host.

It never raises and never causes a 500: every failure is a Deny policy whose context carries
the access-denied page's texts (rendered by the ``ACCESS_DENIED`` Gateway Response). An Allow
carries, for the integration to map into headers, the sandbox id, the scope and the request's
cookies without the session cookie. Nothing of the token or the cookies is logged.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
    APIGatewayAuthorizerResponse,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from preview_tokens.access import Decision, DenialReason, PreviewRequest
from preview_tokens.data_plane import preview_gate
from preview_tokens.denial_page import denial_for
from preview_tokens.exchange import TOKEN_PARAMETER
from preview_tokens.observability import logger


def preview_request(event: APIGatewayAuthorizerRequestEvent) -> PreviewRequest:
    host = event.get_header_value("Host", default_value="") or event.request_context.domain_name or ""
    return PreviewRequest(
        method=event.http_method,
        path=event.path,
        host=host,
        cookie_header=event.get_header_value("Cookie", default_value="") or "",
        query_token=(event.query_string_parameters or {}).get(TOKEN_PARAMETER),
    )


def policy_for(event: APIGatewayAuthorizerRequestEvent, decision: Decision) -> dict[str, Any]:
    claims = decision.claims
    if decision.allowed and claims is not None:
        response = APIGatewayAuthorizerResponse.from_route_arn(
            event.method_arn,
            principal_id=claims.sandbox_id,
            context={
                "sandbox_id": claims.sandbox_id,
                "scope": claims.scope.value,
                "origin_cookie": decision.origin_cookie,
            },
        )
        response.allow_all_routes(http_method=event.http_method)
        return response.asdict()
    reason = decision.reason or DenialReason.INVALID_TOKEN
    response = APIGatewayAuthorizerResponse.from_route_arn(
        event.method_arn,
        principal_id="anonymous",
        context={
            "reason": reason.value,
            **denial_for(reason, claims.sandbox_id if claims else None).as_context(),
        },
    )
    response.deny_all_routes()
    return response.asdict()


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    authorizer_event = APIGatewayAuthorizerRequestEvent(event)
    try:
        decision = preview_gate().authorize(preview_request(authorizer_event))
        policy = policy_for(authorizer_event, decision)
    except Exception as error:  # never raise: an exception here would be a 500 to the viewer
        logger.exception("authorizer failed closed", extra={"error_type": type(error).__name__})
        decision = Decision(False, DenialReason.UNAVAILABLE)
        policy = policy_for(authorizer_event, decision)
    if not decision.allowed:
        logger.info(
            "preview request denied",
            extra={
                "reason": decision.reason.value if decision.reason else None,
                "method": authorizer_event.http_method,
                "sandbox_id": decision.claims.sandbox_id if decision.claims else None,
            },
        )
    return policy
