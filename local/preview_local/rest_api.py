"""A REST API's resources, methods, authorizers and integrations, read from its OpenAPI definition.

Matching follows API Gateway: among the resources whose path template matches, the most
specific wins (segment by segment: a literal before ``{param}`` before ``{proxy+}``); then the
resource's own method, else its ``ANY`` method. A path no resource matches, or a resource without
the method, gets the ``MISSING_AUTHENTICATION_TOKEN`` gateway response (403) - API Gateway does
not fall back to a less specific resource.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from preview_local.deployment import RestApiDeployment

ANY_METHOD = "x-amazon-apigateway-any-method"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch")
_FUNCTION_IN_URI = re.compile(r":function:([A-Za-z0-9_-]+)(?::[^/]*)?/invocations$")
_LITERAL, _PARAMETER, _GREEDY = 0, 1, 2


class RestApiDefinitionError(ValueError):
    """The OpenAPI definition uses something the local gateway does not emulate."""


DEFAULT_TIMEOUT_MILLIS = 29_000  # API Gateway's default (and, for most APIs, maximum) integration timeout


@dataclass(frozen=True)
class Integration:
    type: str
    uri: str
    request_parameters: Mapping[str, str] = field(default_factory=dict)
    timeout_millis: int = DEFAULT_TIMEOUT_MILLIS

    @property
    def timeout_seconds(self) -> float:
        return self.timeout_millis / 1000

    @property
    def function_name(self) -> str:
        """The Lambda function an ``aws_proxy`` integration invokes."""
        match = _FUNCTION_IN_URI.search(self.uri)
        if match is None:
            raise RestApiDefinitionError(f"not a Lambda invocation URI: {self.uri}")
        return match.group(1)


@dataclass(frozen=True)
class LambdaAuthorizer:
    name: str
    type: str
    function_name: str
    result_ttl_seconds: int
    identity_sources: tuple[str, ...]


@dataclass(frozen=True)
class Method:
    http_method: str
    integration: Integration
    authorizer: LambdaAuthorizer | None


@dataclass(frozen=True)
class Resource:
    path: str
    methods: Mapping[str, Method]

    @property
    def segments(self) -> list[str]:
        return self.path.strip("/").split("/") if self.path != "/" else []

    def match(self, request_segments: list[str]) -> tuple[tuple[int, ...], dict[str, str]] | None:
        """Specificity ranks and path parameters, or ``None`` if the path does not match."""
        ranks: list[int] = []
        parameters: dict[str, str] = {}
        template = self.segments
        for index, part in enumerate(template):
            if part.startswith("{") and part.endswith("+}"):
                rest = "/".join(request_segments[index:])
                if index != len(template) - 1 or not rest:
                    return None
                parameters[part[1:-2]] = rest  # as sent: REST APIs do not decode path parameters
                ranks.append(_GREEDY)
                return tuple(ranks), parameters
            if index >= len(request_segments):
                return None
            segment = request_segments[index]
            if part.startswith("{") and part.endswith("}"):
                if not segment:
                    return None
                parameters[part[1:-1]] = segment
                ranks.append(_PARAMETER)
            elif part == segment:
                ranks.append(_LITERAL)
            else:
                return None
        if len(request_segments) != len(template):
            return None
        return tuple(ranks), parameters


@dataclass(frozen=True)
class RouteMatch:
    resource: Resource
    method: Method
    path_parameters: Mapping[str, str]


@dataclass(frozen=True)
class GatewayResponseTemplate:
    status_code: int | None
    response_parameters: Mapping[str, str]
    response_templates: Mapping[str, str]


@dataclass(frozen=True)
class RestApi:
    api_id: str
    stage: str
    resources: tuple[Resource, ...]
    gateway_responses: Mapping[str, GatewayResponseTemplate]
    binary_media_types: tuple[str, ...]

    def match(self, http_method: str, path: str) -> RouteMatch | None:
        segments = path.strip("/").split("/") if path.strip("/") else []
        best: tuple[tuple[int, ...], Resource, dict[str, str]] | None = None
        for resource in self.resources:
            matched = resource.match(segments)
            if matched is not None and (best is None or matched[0] < best[0]):
                best = (matched[0], resource, matched[1])
        if best is None:
            return None
        _, resource, parameters = best
        method = resource.methods.get(http_method.upper()) or resource.methods.get("ANY")
        if method is None:
            return None
        return RouteMatch(resource, method, parameters)

    def is_binary(self, content_type: str | None) -> bool:
        if not content_type:
            return False
        media_type = content_type.split(";", 1)[0].strip().lower()
        kind = media_type.split("/", 1)[0]
        return any(
            pattern in ("*/*", media_type) or pattern == f"{kind}/*" for pattern in self.binary_media_types
        )

    @classmethod
    def from_deployment(cls, deployment: RestApiDeployment) -> RestApi:
        definition = deployment.definition
        authorizers = _authorizers(definition)
        default_security = definition.get("security")
        resources = []
        for path, operations in definition.get("paths", {}).items():
            methods: dict[str, Method] = {}
            for key, operation in operations.items():
                if key == ANY_METHOD:
                    http_method = "ANY"
                elif key in HTTP_METHODS:
                    http_method = key.upper()
                else:
                    continue
                methods[http_method] = _method(http_method, operation, authorizers, default_security)
            resources.append(Resource(path, methods))
        responses = {
            response_type: GatewayResponseTemplate(
                status_code=int(spec["statusCode"]) if "statusCode" in spec else None,
                response_parameters=spec.get("responseParameters", {}),
                response_templates=spec.get("responseTemplates", {}),
            )
            for response_type, spec in definition.get("x-amazon-apigateway-gateway-responses", {}).items()
        }
        return cls(
            api_id=deployment.api_id,
            stage=deployment.stage,
            resources=tuple(resources),
            gateway_responses=responses,
            binary_media_types=tuple(
                media_type.replace("~1", "/")
                for media_type in definition.get("x-amazon-apigateway-binary-media-types", [])
            ),
        )


def _authorizers(definition: Mapping[str, Any]) -> dict[str, LambdaAuthorizer]:
    schemes = definition.get("components", {}).get("securitySchemes") or definition.get(
        "securityDefinitions", {}
    )
    authorizers: dict[str, LambdaAuthorizer] = {}
    for name, scheme in schemes.items():
        spec = scheme.get("x-amazon-apigateway-authorizer")
        if spec is None:
            continue
        kind = str(spec.get("type", "token")).lower()
        if kind != "request":
            raise RestApiDefinitionError(
                f"authorizer {name}: only REQUEST authorizers are emulated, not {kind}"
            )
        identity = spec.get("identitySource") or ""
        authorizers[name] = LambdaAuthorizer(
            name=name,
            type=kind,
            function_name=Integration("aws_proxy", spec["authorizerUri"]).function_name,
            result_ttl_seconds=int(spec.get("authorizerResultTtlInSeconds", 300)),
            identity_sources=tuple(source.strip() for source in identity.split(",") if source.strip()),
        )
    return authorizers


def _method(
    http_method: str,
    operation: Mapping[str, Any],
    authorizers: Mapping[str, LambdaAuthorizer],
    default_security: Any,
) -> Method:
    spec = operation.get("x-amazon-apigateway-integration")
    if spec is None:
        raise RestApiDefinitionError(f"{http_method} has no x-amazon-apigateway-integration")
    if spec.get("connectionType", "INTERNET") != "INTERNET":
        raise RestApiDefinitionError(f"{http_method}: only INTERNET integrations are emulated, no VPC link")
    integration = Integration(
        type=str(spec["type"]).lower(),
        uri=str(spec["uri"]),
        request_parameters=spec.get("requestParameters", {}),
        timeout_millis=int(spec.get("timeoutInMillis", DEFAULT_TIMEOUT_MILLIS)),
    )
    if integration.type != "aws_proxy":  # the template's only kind since the REST sandbox routes retired
        raise RestApiDefinitionError(f"integration type {integration.type} is not emulated")
    authorizer = None
    for requirement in operation.get("security", default_security) or []:
        for name in requirement:
            if name in authorizers:
                authorizer = authorizers[name]
    return Method(http_method, integration, authorizer)
