"""One REST API stage served locally the way API Gateway serves it.

For each request: match a resource and method (:mod:`rest_api`), else ``403 Missing
Authentication Token``; run the method's Lambda ``REQUEST`` authorizer on every request (no
result cache) with an API-Gateway-shaped event and apply its policy to the method ARN
(:mod:`authorizer_policy`); a deny renders ``ACCESS_DENIED``, an authorizer that raises or
answers garbage renders ``AUTHORIZER_CONFIGURATION_ERROR`` (``Unauthorized`` raised: 401
``UNAUTHORIZED``), all through the API's Gateway Responses (:mod:`gateway_responses`). Then the
integration: ``aws_proxy`` invokes the function with a proxy event and maps its answer back;
``http_proxy`` forwards to the URI after applying ``requestParameters`` and returns the origin's
status, headers and body.

What API Gateway does to a request, as recorded against AWS (sources in
``local/preview_local/README.md``): headers in :data:`DROPPED_FROM_REQUEST` (hop-by-hop,
``Upgrade``...) never reach an event or an integration; request line and header values above
:data:`HEADER_LIMIT_BYTES` are refused; an ``http_proxy`` integration gets the client's query
with the integration URI's and the mapped parameters *added* (``foobar,bar``: merged, never
replaced), a mapped header *replaces* the client's, and a mapping whose value is missing or empty
is not applied at all (so the client's own header or parameter passes); the integration answers
within its ``timeoutInMillis`` (default 29 s) or the request gets ``INTEGRATION_TIMEOUT``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import http.client
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

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
# Not passed on by an HTTP_PROXY integration unless a mapping sets them (LocalStack, validated).
NOT_PROXIED = frozenset({"host", "content-encoding", "via"})
# Not copied from the origin's answer: this gateway frames the response itself.
RESPONSE_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
# REST API quota "Total combined size of request line and header values" (the payload's, 10 MB,
# is http_server's; the integration timeout is each integration's timeoutInMillis, 29 s by default).
HEADER_LIMIT_BYTES = 10_240
_INTERNAL_ERROR = b'{"message": "Internal server error"}'


class RestApiGateway:
    def __init__(
        self,
        api: RestApi,
        functions: Mapping[str, Invocable],
        forwarded_port: int,
        scheme: str = "http",
        integration_timeout_seconds: float | None = None,
    ) -> None:
        """``integration_timeout_seconds`` overrides every integration's ``timeoutInMillis`` (tests)."""
        self.api = api
        self._functions = functions
        self._forwarded_port = forwarded_port
        self._scheme = scheme
        self._integration_timeout = integration_timeout_seconds

    def handle(self, request: HttpRequest) -> HttpResponse:
        if request_size(request) > HEADER_LIMIT_BYTES:
            return HttpResponse.text(431, "Request Header Fields Too Large")
        request = _without_dropped_headers(request)
        request_id = str(uuid.uuid4())
        match = self.api.match(request.method, request.path)
        if match is None:
            return self._gateway_error(request, request_id, "MISSING_AUTHENTICATION_TOKEN")
        fields = self._request_fields(request, match, request_id)
        authorizer_context: dict[str, Any] | None = None
        if match.method.authorizer is not None:
            outcome = self._authorize(request, match.method.authorizer, fields, request_id)
            if isinstance(outcome, HttpResponse):
                return outcome
            authorizer_context = outcome
            fields["requestContext"]["authorizer"] = outcome
        integration = match.method.integration
        if integration.type == "aws_proxy":
            response = self._invoke_proxy(request, integration, fields)
        else:
            response = self._forward(request, request_id, match, integration, authorizer_context or {})
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

    def _forward(
        self,
        request: HttpRequest,
        request_id: str,
        match: RouteMatch,
        integration: Integration,
        authorizer: Mapping[str, Any],
    ) -> HttpResponse:
        headers = [(name, value) for name, value in request.headers if name.lower() not in NOT_PROXIED]
        mapped_query: list[tuple[str, str]] = []
        path_values: dict[str, str] = {}
        for target, source in integration.request_parameters.items():
            value = _mapped_value(source, request, match, authorizer)
            kind, _, name = target.removeprefix("integration.request.").partition(".")
            if not value:  # missing or empty: not applied, whatever the client sent stays
                continue
            if kind == "header":
                headers = [(key, old) for key, old in headers if key.lower() != name.lower()] + [
                    (name, value)
                ]
            elif kind == "querystring":
                mapped_query.append((name, value))
            elif kind == "path":
                path_values[name] = value
        uri = integration.uri
        for name, value in path_values.items():
            uri = uri.replace("{" + name + "}", quote(value, safe="/"))
        endpoint = urlsplit(uri)
        # Merged, never replaced: the URI's parameters, the client's, then the mapped ones.
        query = [*parse_qsl(endpoint.query, keep_blank_values=True), *request.query_items(), *mapped_query]
        path = (endpoint.path or "/") + (f"?{urlencode(query)}" if query else "")
        timeout = self._integration_timeout or integration.timeout_seconds
        deadline = time.monotonic() + timeout
        connection = http.client.HTTPConnection(endpoint.hostname or "", endpoint.port, timeout=timeout)
        try:
            connection.request(request.method, path, body=request.body or None, headers=dict(_merge(headers)))
            _time_left(connection, deadline)
            response = connection.getresponse()
            body = _read_until(response, connection, deadline)
        except TimeoutError:
            return self._gateway_error(request, request_id, "INTEGRATION_TIMEOUT")
        except (OSError, http.client.HTTPException):
            return self._gateway_error(request, request_id, "INTEGRATION_FAILURE")
        finally:
            connection.close()
        kept = tuple(
            (name, value) for name, value in response.getheaders() if name.lower() not in RESPONSE_HOP_BY_HOP
        )
        return HttpResponse(response.status, kept, body)

    # ----------------------------------------------------------------------- events
    def lambda_events(self, request: HttpRequest) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """What this gateway would send for ``request``: the authorizer's event (if the route has an
        authorizer) and the ``aws_proxy`` integration's event (if it invokes a function).

        The ready events of ``.local/events/`` are made with it, so they are exactly what the local
        gateway sends the functions (the ``requestContext.authorizer`` of an authorized proxy
        event aside).
        """
        match = self.api.match(request.method, request.path)
        if match is None:
            raise ValueError(f"{request.method} {request.path} is not a route of this API")
        fields = self._request_fields(request, match, str(uuid.uuid4()))
        authorizer = self._authorizer_event(request, fields) if match.method.authorizer is not None else None
        proxy = self._proxy_event(request, fields) if match.method.integration.type == "aws_proxy" else None
        return authorizer, proxy

    def _authorizer_event(self, request: HttpRequest, fields: dict[str, Any]) -> dict[str, Any]:
        arn = method_arn(REGION, ACCOUNT_ID, self.api.api_id, self.api.stage, request.method, request.path)
        return {"type": "REQUEST", "methodArn": arn, **fields}

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


def _mapped_value(
    source: str, request: HttpRequest, match: RouteMatch, authorizer: Mapping[str, Any]
) -> str | None:
    """The value of an integration ``requestParameters`` source expression."""
    if len(source) >= 2 and source.startswith("'") and source.endswith("'"):
        return source[1:-1]
    if source.startswith("context.authorizer."):
        value = authorizer.get(source.removeprefix("context.authorizer."))
        return None if value is None else str(value)
    if source.startswith("method.request.path."):
        return match.path_parameters.get(source.removeprefix("method.request.path."))
    if source.startswith("method.request.header."):
        return request.header(source.removeprefix("method.request.header."))
    if source.startswith("method.request.querystring."):
        wanted = source.removeprefix("method.request.querystring.")
        return next((value for name, value in reversed(request.query_items()) if name == wanted), None)
    raise ValueError(f"request parameter source {source} is not emulated")


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


def _read_until(
    response: http.client.HTTPResponse, connection: http.client.HTTPConnection, deadline: float
) -> bytes:
    """The whole body, or TimeoutError once the integration's time is up (not per read: in total)."""
    chunks: list[bytes] = []
    while True:
        _time_left(connection, deadline)
        chunk = response.read1(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _time_left(connection: http.client.HTTPConnection, deadline: float) -> None:
    """The socket waits no longer than the integration's time left; TimeoutError when none is."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("integration timeout")
    if connection.sock is not None:
        connection.sock.settimeout(remaining)


def _merge(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Headers for http.client: repeated names joined with ', ' (Cookie with '; ')."""
    merged: dict[str, tuple[str, list[str]]] = {}
    for name, value in headers:
        merged.setdefault(name.lower(), (name, []))[1].append(value)
    return [
        (name, ("; " if name.lower() == "cookie" else ", ").join(values)) for name, values in merged.values()
    ]


def _short_id(text: str) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, text).hex[:6]
