"""Data-plane REQUEST authorizer: runs before every request to a sandbox host.

It never causes a 500, and denies by policy: every failure is a Deny policy whose context
carries the access-denied page's texts (rendered by the ``ACCESS_DENIED`` Gateway Response,
always a 403). The one exception is a revocation view older than its allowed staleness: then
nothing can be decided, the answer must be ``503`` + ``Retry-After`` ("Preview unavailable"),
and a Lambda authorizer's only way to get a non-403 from API Gateway is to fail: it raises
:class:`DataPlaneUnavailableError`, which API Gateway answers with the
``AUTHORIZER_CONFIGURATION_ERROR`` Gateway Response, a 503 page with ``Retry-After`` in
``template.yaml``. It recovers by itself at the next successful refresh. An Allow
carries, for the integration to map into headers, the sandbox id, the scope and the request's
cookies without the session cookie. Nothing of the token or the cookies is logged.

The event is read as the plain dict API Gateway sends, and the policy is built as a plain
dict, without Powertools' authorizer data classes: importing them costs about a third of the
cold start, and their per-request helpers (a case-insensitive copy of the headers on every
header read, a deprecation warning per ``get_header_value``, a regex-checked route builder)
cost several times the token check itself (``make bench``). The policy is the one
``APIGatewayAuthorizerResponse.from_route_arn(arn).allow_all_routes(method)`` /
``deny_all_routes()`` produces (same keys, same statement, same verbs accepted), except that
the ARN's partition is kept, and that an unusable ``methodArn`` still gets a Deny (on ``*``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from preview_tokens.access import Decision, DenialReason, PreviewRequest
from preview_tokens.data_plane import preview_gate
from preview_tokens.denial_page import denial_for
from preview_tokens.exchange import TOKEN_PARAMETER
from preview_tokens.observability import logger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

# The HTTP verbs an execute-api policy names (Powertools' ``HttpVerb`` names and values).
_POLICY_VERBS = {
    "GET": "GET",
    "POST": "POST",
    "PUT": "PUT",
    "PATCH": "PATCH",
    "HEAD": "HEAD",
    "DELETE": "DELETE",
    "OPTIONS": "OPTIONS",
    "ALL": "*",
    "*": "*",
}
_POLICY_VERSION = "2012-10-17"
_INVOKE = "execute-api:Invoke"


def _header(headers: Mapping[str, Any] | None, name: str, lower_name: str) -> str:
    """A header's value, names compared case-insensitively (API Gateway keeps the client's case)."""
    if not headers:
        return ""
    value = headers.get(name)
    if value is None:
        value = headers.get(lower_name)
        if value is None:
            for key, candidate in headers.items():
                if key.lower() == lower_name:
                    value = candidate
    return value or ""


def preview_request(event: Mapping[str, Any]) -> PreviewRequest:
    """The gate's view of a REST ``REQUEST`` authorizer event (the raw dict or a wrapper of it)."""
    headers = event.get("headers")
    host = _header(headers, "Host", "host") or (event.get("requestContext") or {}).get("domainName") or ""
    return PreviewRequest(
        method=event["httpMethod"],
        path=event["path"],
        host=host,
        cookie_header=_header(headers, "Cookie", "cookie"),
        query_token=(event.get("queryStringParameters") or {}).get(TOKEN_PARAMETER),
    )


def _api_stage_arn(method_arn: str) -> str:
    """``arn:<partition>:execute-api:<region>:<account>:<api>/<stage>`` of a method ARN.

    Raises (IndexError/ValueError) on an ARN that is not ``...:<api>/<stage>/<verb>[/<path>]``.
    Unlike Powertools' ``from_route_arn``, which always writes ``arn:aws:``, the partition is
    the method ARN's own, so the policy also matches in ``aws-cn`` and ``aws-us-gov``.
    """
    arn_parts = method_arn.split(":", 5)
    api_id, stage, _verb = arn_parts[5].split(":", 1)[0].split("/", 3)[:3]
    return f"arn:{arn_parts[1]}:execute-api:{arn_parts[3]}:{arn_parts[4]}:{api_id}/{stage}"


def _policy(principal_id: str, effect: str, resource: str, context: dict[str, Any]) -> dict[str, Any]:
    return {
        "principalId": principal_id,
        "policyDocument": {
            "Version": _POLICY_VERSION,
            "Statement": [{"Action": _INVOKE, "Effect": effect, "Resource": [resource]}],
        },
        "context": context,
    }


def policy_for(event: Mapping[str, Any], decision: Decision) -> dict[str, Any]:
    """Allow every path of the API for the request's method, or deny everything."""
    claims = decision.claims
    if decision.allowed and claims is not None:
        verb = _POLICY_VERBS.get(event["httpMethod"])
        if verb is None:
            raise ValueError("not an HTTP verb an execute-api policy can name")
        return _policy(
            claims.sandbox_id,
            "Allow",
            f"{_api_stage_arn(event['methodArn'])}/{verb}/*",
            {
                "sandbox_id": claims.sandbox_id,
                "scope": claims.scope.value,
                "origin_cookie": decision.origin_cookie,
            },
        )
    reason = decision.reason or DenialReason.INVALID_TOKEN
    return _policy(
        "anonymous",
        "Deny",
        f"{_api_stage_arn(event['methodArn'])}/*/*",
        {"reason": reason.value, **denial_for(reason, claims.sandbox_id if claims else None).as_context()},
    )


def _fail_closed(event: Mapping[str, Any], decision: Decision) -> dict[str, Any]:
    try:
        return policy_for(event, decision)
    except Exception:  # no usable methodArn: deny every resource instead
        reason = decision.reason or DenialReason.UNAVAILABLE
        context = {"reason": reason.value, **denial_for(reason, None).as_context()}
        return _policy("anonymous", "Deny", "*", context)


class DataPlaneUnavailableError(Exception):
    """Raised on purpose so that API Gateway answers 503 (see the module's docstring)."""


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        decision = preview_gate().authorize(preview_request(event))
        if decision.retry_later:
            logger.warning("preview request not decided: revocation view too stale")
            raise DataPlaneUnavailableError("revocation view too stale")
        policy = policy_for(event, decision)
    except DataPlaneUnavailableError:
        raise
    except Exception as error:  # never raise: an exception here would be a 500 to the viewer
        logger.exception("authorizer failed closed", extra={"error_type": type(error).__name__})
        decision = Decision(False, DenialReason.UNAVAILABLE)
        policy = _fail_closed(event, decision)
    if not decision.allowed:
        logger.info(
            "preview request denied",
            extra={
                "reason": decision.reason.value if decision.reason else None,
                "method": event.get("httpMethod") if isinstance(event, Mapping) else None,
                "sandbox_id": decision.claims.sandbox_id if decision.claims else None,
            },
        )
    return policy
