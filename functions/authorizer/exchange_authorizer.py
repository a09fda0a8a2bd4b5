"""The exchange route's REQUEST authorizer: verifies the ``?mt=`` token before the exchange runs.

Attached to ``GET /__preview/exchange[/{proxy+}]`` with identity source ``X-Preview-Token`` (the
edge's copy of ``?mt=``) and no result cache: it runs once per preview open (one ``?mt=``
navigation), never on the preview's other requests, which the edge decides. It is the exchange's
only verifier: the gate's ``verify`` (pinned algorithm and ``kid``, signature, expiry, bound to
the request's sandbox host, revocation) and the origin assertion, through
:func:`preview_tokens.data_plane.exchange.exchange_context`; on a renewal in place (the browser
still holds the previous token's origin assertion cookie) it also records the renewal link.

It always answers Allow (for the request's method on this API): a refusal is the context's
``reason``, which the exchange renders as the access-denied page with the tenant's
``frame-ancestors`` and the ``postMessage`` event, neither of which an API Gateway error page
can carry. A grant's context carries the verified token, its claims and its origin assertion,
the only things the exchange sets cookies from. An answer it cannot build (an unusable
``methodArn``) raises :class:`PreviewsUnavailableError`: ``AUTHORIZER_CONFIGURATION_ERROR``, 503.
Nothing of the token is logged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.logging import correlation_paths
from preview_tokens.data_plane.access import DenialReason, fallback_token
from preview_tokens.data_plane.authorizer_answer import (
    _POLICY_VERBS,
    UNAVAILABLE_MESSAGE,
    PreviewsUnavailableError,
    _api_stage_arn,
    _header,
    _policy,
)
from preview_tokens.data_plane.exchange import (
    CONTEXT_REASON,
    CONTEXT_SANDBOX,
    ExchangeDenied,
    denial_context,
    exchange_context,
)
from preview_tokens.data_plane.wiring import preview_gate, renewal_recorder
from preview_tokens.observability import logger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


def _host(event: dict[str, Any]) -> str:
    return (
        _header(event.get("headers"), "Host", "host")
        or (event.get("requestContext") or {}).get("domainName")
        or ""
    )


# Every line tagged with this function's own name and request (Lambda's context), not a stale one.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        resource = f"{_api_stage_arn(event['methodArn'])}/{_POLICY_VERBS[event['httpMethod']]}/*"
    except Exception as error:  # no Allow can be scoped: 503, never an Allow on everything
        logger.warning("exchange authorizer failed closed", extra={"error_type": type(error).__name__})
        raise PreviewsUnavailableError(UNAVAILABLE_MESSAGE) from None
    try:
        headers = event.get("headers")
        answer = exchange_context(
            preview_gate(),
            fallback_token(headers),
            _host(event),
            _header(headers, "Cookie", "cookie") or "",
            renewal_recorder(),
        )
    except Exception as error:  # the exchange renders "unavailable" (503, Retry-After)
        logger.exception("exchange authorizer failed closed", extra={"error_type": type(error).__name__})
        answer = denial_context(ExchangeDenied(DenialReason.UNAVAILABLE, None))
    if answer.get(CONTEXT_REASON):
        logger.info(
            "exchange token refused",
            extra={"reason": answer[CONTEXT_REASON], "sandbox_id": answer.get(CONTEXT_SANDBOX) or None},
        )
    return _policy(answer.get(CONTEXT_SANDBOX) or "anonymous", "Allow", resource, answer)
