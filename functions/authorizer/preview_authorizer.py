"""The former per-request data-plane REQUEST authorizer; no route of the template runs it any more
(the exchange routes run ``exchange_authorizer``, see docs/architecture.md).

It never causes a 500. A refusal is a Deny policy whose context carries the access-denied page's
texts (rendered by the ``ACCESS_DENIED`` Gateway Response, always 403). "Unavailable" (the key
store failing or backing off, a revocation view older than its allowed staleness, a missing
setting, a bug) must be a 503 instead, and a Gateway
Response's status is fixed per response type: so the authorizer then raises
:class:`PreviewsUnavailableError`, which API Gateway answers with ``AUTHORIZER_CONFIGURATION_ERROR``
(any error but ``Unauthorized`` from a Lambda authorizer), customized in template.yaml to 503 with
``Retry-After`` and the "Preview unavailable" page. An Allow
carries, for the integration to map into headers, the sandbox id, the scope, the request's
cookies without the data plane's own (``__Host-mp_*``) and the origin assertion
(``X-Preview-Assertion``, see ``origin_assertion``). Every one of those values is non-empty, or the request is
denied: API Gateway does not apply a mapping whose value is empty, and the client's own header
of that name would then reach the origin. Nothing of the token or the cookies is logged.

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

from aws_lambda_powertools.logging import correlation_paths
from preview_tokens.data_plane.access import (
    METHOD_OVERRIDE_HEADERS,
    Decision,
    DenialReason,
    PreviewRequest,
    fallback_token,
    query_carries_token,
)
from preview_tokens.data_plane.authorizer_answer import (
    _POLICY_VERBS,
    UNAVAILABLE_MESSAGE,
    _api_stage_arn,
    _header,
    _policy,
)
from preview_tokens.data_plane.authorizer_answer import (
    PreviewsUnavailableError as PreviewsUnavailableError,
)
from preview_tokens.data_plane.denial_page import denial_for
from preview_tokens.data_plane.wiring import preview_gate
from preview_tokens.observability import DENIALS, cloudfront_request_id, count, logger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


def _method_overrides(event: Mapping[str, Any]) -> tuple[str, ...]:
    """Every value of every method-override header (all repetitions: ``multiValueHeaders``)."""
    multi: Mapping[str, Any] = event.get("multiValueHeaders") or {}
    single: Mapping[str, Any] = event.get("headers") or {}
    # Hot path: every override header's name contains "method"; one C-level scan of the names
    # rules them out for almost every request before any per-header work.
    if "method" not in " ".join((*multi, *single)).lower():
        return ()
    found: list[str] = []
    for name, values in multi.items():
        if name.lower() in METHOD_OVERRIDE_HEADERS:
            found.extend(value or "" for value in values or ())
    for name, value in single.items():
        if name.lower() in METHOD_OVERRIDE_HEADERS:
            found.append(value or "")
    return tuple(found)


def preview_request(event: Mapping[str, Any]) -> PreviewRequest:
    """The gate's view of a REST ``REQUEST`` authorizer event (the raw dict or a wrapper of it)."""
    headers = event.get("headers")
    host = _header(headers, "Host", "host") or (event.get("requestContext") or {}).get("domainName") or ""
    return PreviewRequest(
        method=event["httpMethod"],
        path=event["path"],
        host=host,
        cookie_header=_header(headers, "Cookie", "cookie"),
        fallback_token=fallback_token(headers),
        query_carries_token=query_carries_token(event.get("multiValueQueryStringParameters")),
        method_overrides=_method_overrides(event),
    )


def origin_headers(decision: Decision) -> dict[str, str] | None:
    """The context of an Allow: what template.yaml maps into the origin's request headers.

    ``None`` when any value is empty: API Gateway does not apply a mapping whose value is
    empty, so the client's own header of that name (a forged ``X-Sandbox-Id``, the session
    cookie in ``Cookie``) would reach the origin. Such a request is denied instead.
    """
    claims = decision.claims
    if not decision.allowed or claims is None:
        return None
    mapped = {
        "sandbox_id": claims.sandbox_id,
        "scope": claims.scope.value,
        "origin_cookie": decision.origin_cookie,
        "origin_assertion": decision.origin_assertion,
    }
    return mapped if all(mapped.values()) else None


def policy_for(event: Mapping[str, Any], decision: Decision) -> dict[str, Any]:
    """Allow every path of the API for the request's method, or deny everything."""
    claims = decision.claims
    mapped = origin_headers(decision)
    if mapped is not None and claims is not None:
        verb = _POLICY_VERBS.get(event["httpMethod"])
        if verb is None:
            raise ValueError("not an HTTP verb an execute-api policy can name")
        return _policy(claims.sandbox_id, "Allow", f"{_api_stage_arn(event['methodArn'])}/{verb}/*", mapped)
    if decision.allowed:  # allowed, but a mapped header would be empty: fail closed
        decision = Decision(False, DenialReason.UNAVAILABLE)
    reason = decision.reason or DenialReason.INVALID_TOKEN
    return _policy(
        "anonymous",
        "Deny",
        f"{_api_stage_arn(event['methodArn'])}/*/*",
        {"reason": reason.value, **denial_for(reason, claims.sandbox_id if claims else None).as_context()},
    )


# Every line tagged with this function's own name and request (Lambda's context), not a stale one.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        decision = preview_gate().authorize(preview_request(event))
        if decision.allowed and not decision.origin_assertion:  # the origin would refuse it: fail closed
            decision = Decision(False, DenialReason.UNAVAILABLE, decision.claims)
        policy = policy_for(event, decision)
    except Exception as error:  # fail closed: never an Allow, never API Gateway's bare 500
        logger.exception("authorizer failed closed", extra={"error_type": type(error).__name__})
        count(DENIALS, ("Reason", DenialReason.UNAVAILABLE.value))
        raise PreviewsUnavailableError(UNAVAILABLE_MESSAGE) from None
    reason = policy["context"].get("reason")
    if reason == DenialReason.UNAVAILABLE.value:  # a 503, not a Deny (see the module's docstring)
        logger.warning(
            "preview request unavailable",
            extra={"reason": reason, "request_id": cloudfront_request_id(event.get("headers"))},
        )
        count(DENIALS, ("Reason", reason))
        raise PreviewsUnavailableError(UNAVAILABLE_MESSAGE)
    if reason is not None:
        logger.info(
            "preview request denied",
            extra={
                "reason": reason,
                "method": event.get("httpMethod") if isinstance(event, Mapping) else None,
                "sandbox_id": decision.claims.sandbox_id if decision.claims else None,
                "request_id": cloudfront_request_id(event.get("headers")),
            },
        )
        count(DENIALS, ("Reason", reason))
    return policy
