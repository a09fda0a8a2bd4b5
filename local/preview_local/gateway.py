"""One REST API stage served locally the way API Gateway serves it.

For each request: match a resource and method (:mod:`rest_api`), else ``403 Missing
Authentication Token``; run the method's Lambda ``REQUEST`` authorizer, if it has one, on every
request (no result cache) with an API-Gateway-shaped event and apply its policy to the method ARN
(:mod:`authorizer_policy`); a deny renders ``ACCESS_DENIED``, an authorizer that raises or
answers garbage renders ``AUTHORIZER_CONFIGURATION_ERROR`` (``Unauthorized`` raised: 401
``UNAUTHORIZED``), all through the API's Gateway Responses (:mod:`gateway_responses`). Then the
integration: ``aws_proxy`` invokes the function with a proxy event (path and path parameters as
the client sent them, undecoded, as REST APIs pass them) and maps its answer back. The template
has no other integration since the REST sandbox routes retired (issue 13: allowed traffic goes
from the edge to the fleet ingress), so no other is emulated.

What API Gateway does to a request, as recorded against AWS (sources in
``local/preview_local/README.md``): headers in :data:`DROPPED_FROM_REQUEST` (hop-by-hop,
``Upgrade``...) never reach an event; request line and header values above
:data:`HEADER_LIMIT_BYTES` are refused.
"""

from __future__ import annotations

import base64
import binascii
import copy
import dataclasses
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from preview_local.authorizer_policy import (
    AuthorizerOutput,
    AuthorizerOutputError,
    PolicyDecision,
    method_arn,
)
from preview_local.deployment import ACCOUNT_ID, REGION
from preview_local.gateway_responses import EXPLICIT_DENY_MESSAGE, GatewayError, render_gateway_response
from preview_local.http_messages import HttpRequest, HttpResponse
from preview_local.lambda_runtime import Invocable
from preview_local.rest_api import Integration, LambdaAuthorizer, RestApi, RouteMatch

# Dropped when API Gateway parses a request: in no event, never forwarded (LocalStack's
# AWS-validated DROPPED_FROM_REQUEST_COMMON), plus RFC 9110's other hop-by-hop fields (7.6.1;
# Proxy-Authorization, consumed by the first proxy: 11.7.2).
DROPPED_FROM_REQUEST = frozenset(
    {
        "connection",
        "content-length",
        "content-md5",
        "expect",
        "max-forwards",
        "proxy-authenticate",
        "server",
        "te",
        "transfer-encoding",
        "trailer",
        "upgrade",
        "www-authenticate",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
    }
)
# REST API quota "Total combined size of request line and header values" (the payload's, 10 MB,
# is http_server's; the integration timeout is each integration's timeoutInMillis, 29 s by default).
HEADER_LIMIT_BYTES = 10_240
_INTERNAL_ERROR = b'{"message": "Internal server error"}'


# What a REST API's REQUEST authorizer event carries of the request: a proxy event's fields but
# its body (API Gateway adds ``type`` and ``methodArn``).
REQUEST_AUTHORIZER_FIELDS = (
    "resource",
    "path",
    "httpMethod",
    "headers",
    "multiValueHeaders",
    "queryStringParameters",
    "multiValueQueryStringParameters",
    "pathParameters",
    "stageVariables",
    "requestContext",
)


def request_authorizer_event(proxy_event: Mapping[str, Any], method_arn: str) -> dict[str, Any]:
    """The ``REQUEST`` authorizer event API Gateway sends for the request of ``proxy_event``."""
    fields = {name: copy.deepcopy(proxy_event.get(name)) for name in REQUEST_AUTHORIZER_FIELDS}
    return {"type": "REQUEST", "methodArn": method_arn, **fields}


class RestApiGateway:
    def __init__(
        self,
        api: RestApi,
        functions: Mapping[str, Invocable],
        forwarded_port: int,
        scheme: str = "http",
    ) -> None:
        self.api = api
        self._functions = functions
        self._forwarded_port = forwarded_port
        self._scheme = scheme

    def handle(self, request: HttpRequest) -> HttpResponse:
        if request_size(request) > HEADER_LIMIT_BYTES:
            return HttpResponse.text(431, "Request Header Fields Too Large")
        request = _without_dropped_headers(request)
        request_id = str(uuid.uuid4())
        match = self.api.match(request.method, request.path)
        if match is None:
            return self._gateway_error(request, request_id, "MISSING_AUTHENTICATION_TOKEN")
        fields = self._request_fields(request, match, request_id)
        if match.method.authorizer is not None:
            outcome = self._authorize(request, match.method.authorizer, fields, request_id)
            if isinstance(outcome, HttpResponse):
                return outcome
            fields["requestContext"]["authorizer"] = outcome
        response = self._invoke_proxy(request, match.method.integration, fields)
        return dataclasses.replace(response, headers=(*response.headers, ("x-amzn-RequestId", request_id)))

    # ------------------------------------------------------------------ authorizer
    def _authorize(
        self, request: HttpRequest, authorizer: LambdaAuthorizer, fields: dict[str, Any], request_id: str
    ) -> dict[str, Any] | HttpResponse:
        """The authorizer's context (request allowed), or the gateway response that ends the request."""
        if not _identity_present(request, fields, authorizer.identity_sources):
            return self._gateway_error(request, request_id, "UNAUTHORIZED")
        event = self._authorizer_event(request, fields)
        arn = event["methodArn"]
        try:
            answer = self._functions[authorizer.function_name].invoke(event)
        except Exception as error:
            response_type = (
                "UNAUTHORIZED" if str(error) == "Unauthorized" else "AUTHORIZER_CONFIGURATION_ERROR"
            )
            return self._gateway_error(request, request_id, response_type)
        try:
            output = AuthorizerOutput.parse(answer)
        except AuthorizerOutputError:
            return self._gateway_error(request, request_id, "AUTHORIZER_CONFIGURATION_ERROR")
        decision = output.decide(arn)
        context = output.context_strings()
        if decision is not PolicyDecision.ALLOW:
            message = EXPLICIT_DENY_MESSAGE if decision is PolicyDecision.EXPLICIT_DENY else None
            return self._gateway_error(request, request_id, "ACCESS_DENIED", context, message)
        return {"principalId": output.principal_id, **context, "integrationLatency": 0}

    # ---------------------------------------------------------------- integrations
    def _invoke_proxy(
        self, request: HttpRequest, integration: Integration, fields: dict[str, Any]
    ) -> HttpResponse:
        event = self._proxy_event(request, fields)
        try:
            result = self._functions[integration.function_name].invoke(event)
        except Exception:
            return HttpResponse(502, (("Content-Type", "application/json"),), _INTERNAL_ERROR)
        return _proxy_result(result)

    # ----------------------------------------------------------------------- events
    def lambda_events(self, request: HttpRequest) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """What this gateway would send for ``request``: the authorizer's event (if the route has an
        authorizer) and the ``aws_proxy`` integration's event (if it invokes a function).

        The ready events of ``.local/events/`` are made with it, so they are exactly what the local
        gateway sends the functions: behind an authorizer, the proxy event carries the context the
        authorizer answered (it runs here, as API Gateway runs it before the integration).
        """
        match = self.api.match(request.method, request.path)
        if match is None:
            raise ValueError(f"{request.method} {request.path} is not a route of this API")
        request_id = str(uuid.uuid4())
        fields = self._request_fields(request, match, request_id)
        authorizer = None
        if match.method.authorizer is not None:
            authorizer = self._authorizer_event(request, fields)
            outcome = self._authorize(request, match.method.authorizer, fields, request_id)
            if not isinstance(outcome, HttpResponse):
                fields = {**fields, "requestContext": {**fields["requestContext"], "authorizer": outcome}}
        proxy = self._proxy_event(request, fields) if match.method.integration.type == "aws_proxy" else None
        return authorizer, proxy

    def _authorizer_event(self, request: HttpRequest, fields: dict[str, Any]) -> dict[str, Any]:
        arn = method_arn(REGION, ACCOUNT_ID, self.api.api_id, self.api.stage, request.method, request.path)
        return request_authorizer_event(fields, arn)

    def _proxy_event(self, request: HttpRequest, fields: dict[str, Any]) -> dict[str, Any]:
        binary = self.api.is_binary(request.header("Content-Type"))
        body: str | None = None
        if request.body:
            body = (
                base64.b64encode(request.body).decode() if binary else request.body.decode("utf-8", "replace")
            )
        return {**fields, "body": body, "isBase64Encoded": bool(request.body) and binary}

    def _request_fields(self, request: HttpRequest, match: RouteMatch, request_id: str) -> dict[str, Any]:
        headers = [
            *request.headers,
            ("X-Forwarded-For", request.client_ip),
            ("X-Forwarded-Port", str(self._forwarded_port)),
            ("X-Forwarded-Proto", self._scheme),
        ]
        multi_headers: dict[str, list[str]] = {}
        for name, value in headers:
            multi_headers.setdefault(name, []).append(value)
        multi_query: dict[str, list[str]] = {}
        for name, value in request.query_items():
            multi_query.setdefault(name, []).append(value)
        now = datetime.now(UTC)
        domain_name = request.host_name
        return {
            "resource": match.resource.path,
            "path": request.path,
            "httpMethod": request.method,
            "headers": {name: values[-1] for name, values in multi_headers.items()},
            "multiValueHeaders": multi_headers,
            "queryStringParameters": {name: values[-1] for name, values in multi_query.items()} or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": dict(match.path_parameters) or None,
            "stageVariables": None,
            "requestContext": {
                "resourceId": _short_id(match.resource.path),
                "resourcePath": match.resource.path,
                "httpMethod": request.method,
                "extendedRequestId": request_id[:16],
                "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "path": request.path,
                "accountId": ACCOUNT_ID,
                "protocol": "HTTP/1.1",
                "stage": self.api.stage,
                "domainPrefix": domain_name.split(".", 1)[0],
                "requestTimeEpoch": int(now.timestamp() * 1000),
                "requestId": request_id,
                "identity": {
                    "cognitoIdentityPoolId": None,
                    "accountId": None,
                    "cognitoIdentityId": None,
                    "caller": None,
                    "sourceIp": request.client_ip,
                    "principalOrgId": None,
                    "accessKey": None,
                    "cognitoAuthenticationType": None,
                    "cognitoAuthenticationProvider": None,
                    "userArn": None,
                    "userAgent": request.header("User-Agent"),
                    "user": None,
                },
                "domainName": domain_name,
                "deploymentId": _short_id(self.api.stage),
                "apiId": self.api.api_id,
            },
        }

    def _gateway_error(
        self,
        request: HttpRequest,
        request_id: str,
        response_type: str,
        authorizer_context: Mapping[str, str] | None = None,
        message: str | None = None,
    ) -> HttpResponse:
        rendered = render_gateway_response(
            self.api.gateway_responses,
            GatewayError(
                response_type=response_type,
                request_id=request_id,
                authorizer_context=authorizer_context or {},
                request_headers=dict(request.headers),
                accept=request.header("Accept") or "",
                message=message,
            ),
        )
        # The log line says why (the access log's $context.authorizer.reason, else the response type).
        reason = (authorizer_context or {}).get("reason") or response_type
        return dataclasses.replace(rendered, log_reason=reason)


def _proxy_result(result: Any) -> HttpResponse:
    """A Lambda proxy integration's answer as HTTP; a malformed answer is API Gateway's 502."""
    malformed = HttpResponse(502, (("Content-Type", "application/json"),), _INTERNAL_ERROR)
    if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int | str):
        return malformed
    merged: dict[str, list[str]] = {}
    for name, values in (result.get("multiValueHeaders") or {}).items():
        merged[name] = [str(value) for value in values]
    for name, value in (result.get("headers") or {}).items():
        if name not in merged:
            merged[name] = [str(value)]
    raw_body = result.get("body") or ""
    try:
        body = (
            base64.b64decode(raw_body, validate=True) if result.get("isBase64Encoded") else raw_body.encode()
        )
        status = int(result["statusCode"])
    except (ValueError, binascii.Error, AttributeError):
        return malformed
    if "Content-Type" not in merged and "content-type" not in {name.lower() for name in merged}:
        merged["Content-Type"] = ["application/json"]
    headers = tuple((name, value) for name, values in merged.items() for value in values)
    return HttpResponse(status, headers, body)


def _identity_present(request: HttpRequest, fields: Mapping[str, Any], sources: tuple[str, ...]) -> bool:
    for source in sources:
        if source.startswith("method.request.header."):
            present = request.header(source.removeprefix("method.request.header."))
        elif source.startswith("method.request.querystring."):
            present = (fields["queryStringParameters"] or {}).get(
                source.removeprefix("method.request.querystring.")
            )
        else:
            raise ValueError(f"identity source {source} is not emulated")
        if not present:
            return False
    return True


def request_size(request: HttpRequest) -> int:
    """Bytes of the request line and the header values, as API Gateway's quota counts them."""
    target = request.path + (f"?{request.query}" if request.query else "")
    line = f"{request.method} {target} HTTP/1.1"
    return len(line.encode("utf-8")) + sum(len(value.encode("utf-8")) for _, value in request.headers)


def _without_dropped_headers(request: HttpRequest) -> HttpRequest:
    """The request without the headers API Gateway drops while parsing it (and those ``Connection`` names)."""
    named = {
        token.strip().lower()
        for name, value in request.headers
        if name.lower() == "connection"
        for token in value.split(",")
    }
    headers = tuple(
        (name, value)
        for name, value in request.headers
        if name.lower() not in DROPPED_FROM_REQUEST and name.lower() not in named
    )
    return dataclasses.replace(request, headers=headers)


def _short_id(text: str) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, text).hex[:6]
