"""What the preview API's Lambda REQUEST authorizer answers: an IAM policy for the request's API
stage, and the helpers it builds it with (``functions/authorizer/exchange_authorizer.py``, the
exchange route's ``?mt=`` authorizer). In the layer because the local stack loads a handler from
its file, without its code directory on ``sys.path``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
# Any message but "Unauthorized" (which API Gateway turns into a 401).
UNAVAILABLE_MESSAGE = "previews unavailable"


class PreviewsUnavailableError(Exception):
    """Raised to make API Gateway answer 503 (``AUTHORIZER_CONFIGURATION_ERROR``), never a Deny."""


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
