"""The exchange route as API Gateway runs it: its REQUEST authorizer, then the exchange with its context."""

from __future__ import annotations

import copy
from typing import Any

import exchange_authorizer
import preview_exchange
from preview_local.gateway import request_authorizer_event
from preview_tokens.data_plane.exchange import EXCHANGE_PATH

from tests.support.events import lambda_context

API_STAGE_ARN = "arn:aws:execute-api:eu-central-1:123456789012:abcdef1234/preview"


def authorizer_event(event: dict[str, Any]) -> dict[str, Any]:
    """The REQUEST authorizer's event for a proxy event of the exchange route."""
    return request_authorizer_event(event, f"{API_STAGE_ARN}/{event['httpMethod']}{event['path']}")


def has_identity(event: dict[str, Any]) -> bool:
    """Whether the identity source (``X-Preview-Token``) is there: else API Gateway answers 401."""
    return any(
        name.lower() == "x-preview-token" and value for name, value in (event.get("headers") or {}).items()
    )


def authorize(event: dict[str, Any]) -> dict[str, Any]:
    """The authorizer's answer (always an Allow) for the exchange route's ``event``."""
    answer: dict[str, Any] = exchange_authorizer.lambda_handler(authorizer_event(event), lambda_context())
    assert [s["Effect"] for s in answer["policyDocument"]["Statement"]] == ["Allow"]
    return answer


def exchange_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """``preview_exchange.lambda_handler`` behind the route's authorizer, as API Gateway calls it.

    Without the identity source the exchange is called without a context (what it answers when API
    Gateway's UNAUTHORIZED is bypassed: ``invalid_token``)."""
    event = copy.deepcopy(event)
    if event.get("resource", "").startswith(EXCHANGE_PATH) and has_identity(event):
        answer = authorize(event)
        request_context = event.setdefault("requestContext", {})
        request_context["authorizer"] = {**answer["context"], "principalId": answer["principalId"]}
    result: dict[str, Any] = preview_exchange.lambda_handler(event, context or lambda_context())
    return result
