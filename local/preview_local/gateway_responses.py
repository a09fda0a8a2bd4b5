"""Gateway Responses: the answers API Gateway itself gives (denied, no route, authorizer broken...).

A response type the API customizes (``x-amazon-apigateway-gateway-responses``) is rendered from
its status code, ``responseParameters`` (``gatewayresponse.header.X`` from a static ``'value'``,
``context.*`` or ``method.request.header.*``) and the response template the request's ``Accept``
selects (else ``application/json``, else the first). A type the API does not customize falls
back to its ``DEFAULT_4XX``/``DEFAULT_5XX`` entry, else to API Gateway's built-in JSON.
Templates are API Gateway's Velocity templates; this renderer substitutes ``$context.*``
references only (``$context.authorizer.<key>``, ``$context.error.*``, ``$context.requestId``...)
and refuses templates with Velocity directives instead of rendering them wrongly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from preview_local.http_messages import HttpResponse
from preview_local.rest_api import GatewayResponseTemplate

_REFERENCE = re.compile(r"\$!?(\{)?context\.([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)(?(1)\})")
_DIRECTIVE = re.compile(r"#\{?(set|if|elseif|else|end|foreach|macro|parse|include|define|break|stop)\b")

# Built-in status and message of the response types this gateway produces.
BUILT_IN: dict[str, tuple[int, str | None]] = {
    "ACCESS_DENIED": (403, "User is not authorized to access this resource"),
    "AUTHORIZER_CONFIGURATION_ERROR": (500, None),
    "AUTHORIZER_FAILURE": (500, None),
    "INTEGRATION_FAILURE": (504, "Internal server error"),
    "INTEGRATION_TIMEOUT": (504, "Endpoint request timed out"),
    "MISSING_AUTHENTICATION_TOKEN": (403, "Missing Authentication Token"),
    "UNAUTHORIZED": (401, "Unauthorized"),
    "API_CONFIGURATION_ERROR": (500, "Internal server error"),
    "BAD_GATEWAY": (502, "Internal server error"),
    # Default statuses of the other types (AWS: "Gateway response types for API Gateway"); this
    # gateway does not produce them itself, a test renders the template's customizations of them.
    "RESOURCE_NOT_FOUND": (404, None),
    "WAF_FILTERED": (403, None),
    "THROTTLED": (429, None),
    "QUOTA_EXCEEDED": (429, None),
    "REQUEST_TOO_LARGE": (413, None),
}
EXPLICIT_DENY_MESSAGE = "User is not authorized to access this resource with an explicit deny"


class GatewayResponseTemplateError(ValueError):
    """A response template uses Velocity features this renderer does not emulate."""


@dataclass(frozen=True)
class GatewayError:
    """One gateway response to render: its type, message and the request it answers."""

    response_type: str
    request_id: str
    authorizer_context: Mapping[str, str]
    request_headers: Mapping[str, str]
    accept: str = ""
    message: str | None = None

    @property
    def default_message(self) -> str | None:
        return self.message if self.message is not None else BUILT_IN[self.response_type][1]


def render_gateway_response(
    customized: Mapping[str, GatewayResponseTemplate], error: GatewayError
) -> HttpResponse:
    status, _ = BUILT_IN[error.response_type]
    family = "DEFAULT_4XX" if status < 500 else "DEFAULT_5XX"
    own = customized.get(error.response_type)
    fallback = customized.get(family)
    spec = own or fallback
    if spec is None:
        body = json.dumps({"message": error.default_message}).encode("utf-8")
        return HttpResponse(
            status, (("Content-Type", "application/json"), ("x-amzn-ErrorType", _error_type(error))), body
        )
    if own is not None and own.status_code is not None:
        status = own.status_code
    elif fallback is not None and fallback.status_code is not None:
        status = fallback.status_code
    media_type, template = _select_template(spec.response_templates, error.accept)
    variables = _variables(error)
    headers: list[tuple[str, str]] = []
    for key, source in spec.response_parameters.items():
        if not key.startswith("gatewayresponse.header."):
            continue
        value = _parameter_value(source, variables, error.request_headers)
        if value is not None:
            headers.append((key.removeprefix("gatewayresponse.header."), value))
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", media_type))
    return HttpResponse(status, tuple(headers), render_template(template, variables).encode("utf-8"))


def render_template(template: str, variables: Mapping[str, str]) -> str:
    """Substitute ``$context.x`` / ``${context.x}`` references; unknown ones render empty."""
    if _DIRECTIVE.search(template):
        raise GatewayResponseTemplateError("Velocity directives are not emulated by the local gateway")
    return _REFERENCE.sub(lambda match: variables.get(match.group(2), ""), template)


def _variables(error: GatewayError) -> dict[str, str]:
    message = error.default_message
    variables = {
        "requestId": error.request_id,
        "error.responseType": error.response_type,
        "error.message": message or "",
        "error.messageString": json.dumps(message),
    }
    variables.update({f"authorizer.{key}": value for key, value in error.authorizer_context.items()})
    return variables


def _parameter_value(
    source: str, variables: Mapping[str, str], request_headers: Mapping[str, str]
) -> str | None:
    if len(source) >= 2 and source.startswith("'") and source.endswith("'"):
        return source[1:-1]
    if source.startswith("context."):
        return variables.get(source.removeprefix("context."))
    if source.startswith("method.request.header."):
        wanted = source.removeprefix("method.request.header.").lower()
        return next((value for name, value in request_headers.items() if name.lower() == wanted), None)
    raise GatewayResponseTemplateError(f"response parameter source {source} is not emulated")


def _select_template(templates: Mapping[str, str], accept: str) -> tuple[str, str]:
    if not templates:
        return "application/json", ""
    for media_range in accept.split(","):
        media_type = media_range.split(";", 1)[0].strip().lower()
        if media_type in templates:
            return media_type, templates[media_type]
    if "application/json" in templates:
        return "application/json", templates["application/json"]
    media_type = next(iter(templates))
    return media_type, templates[media_type]


def _error_type(error: GatewayError) -> str:
    names = {
        "ACCESS_DENIED": "AccessDeniedException",
        "UNAUTHORIZED": "UnauthorizedException",
        "MISSING_AUTHENTICATION_TOKEN": "MissingAuthenticationTokenException",
        "AUTHORIZER_CONFIGURATION_ERROR": "AuthorizerConfigurationException",
        "AUTHORIZER_FAILURE": "AuthorizerFailureException",
    }
    return names.get(error.response_type, "InternalServerErrorException")
