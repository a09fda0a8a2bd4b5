"""The preview data plane as template.yaml deploys it, checked offline after the SAM transform.

What API Gateway, CloudFront and IAM will do is configuration, not code: these tests pin that
configuration to the code it must agree with (the exchange authorizer's identity source, the denial pages,
the settings the functions read, the edge routing rule of the local stack).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from preview_local.cfn_template import PROJECT_ROOT
from preview_local.edge import edge_route
from preview_tokens.data_plane.access import (
    DenialReason,
    fallback_token,
)
from preview_tokens.data_plane.denial_page import (
    authorizer_failure_page,
    content_security_policy,
    denial_for,
    origin_failure_page,
    render_page,
)
from preview_tokens.keys.signing_keys import RETRY_MAX_SECONDS
from preview_tokens.settings import DataPlaneSettings

from tests.support.events import EVENTS_DIR, load_event
from tests.support.template import cloudformation, find_in_map, sam_template, substitute

Template = dict[str, Any]

# Sandbox traffic has no route on the REST API any more: PreviewEdge sends it to the fleet ingress.
RETIRED_SANDBOX_ROUTES = ("/", "/{proxy+}")
# The exchange function's routes: the ?mt= exchange, and the cookie check its redirect lands on.
EXCHANGE_ROUTES = (
    "/__preview/exchange",
    "/__preview/exchange/{proxy+}",
    "/__preview/cookie-check",
    "/__preview/cookie-check/{proxy+}",
)
# Where PreviewEdge sends every request it refuses, whatever its method.
DENIED_ROUTE = "/__preview/denied"
DATA_PLANE_FUNCTIONS = ("PreviewAuthorizerFunction", "ExchangeFunction")
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Type": "text/html; charset=utf-8",
}
SIGNING_CONTEXT = {"StringEquals": {"kms:EncryptionContext:purpose": "preview-token-signing"}}
ORIGIN_KEY_CONTEXT = {"StringEquals": {"kms:EncryptionContext:purpose": "origin-assertion-signing"}}


@pytest.fixture(scope="module")
def template() -> Template:
    return cloudformation()


@pytest.fixture(scope="module")
def resources(template: Template) -> dict[str, Any]:
    resources: dict[str, Any] = template["Resources"]
    return resources


@pytest.fixture(scope="module")
def api(resources: Mapping[str, Any]) -> dict[str, Any]:
    """The preview API's OpenAPI document, as API Gateway imports it."""
    body: dict[str, Any] = resources["PreviewApi"]["Properties"]["Body"]
    return body


def integration(api: Mapping[str, Any], path: str) -> dict[str, Any]:
    operation = api["paths"][path].get("x-amazon-apigateway-any-method") or api["paths"][path]["get"]
    found: dict[str, Any] = operation["x-amazon-apigateway-integration"]
    return found


def static_value(mapping: str) -> str:
    """The value of an API Gateway static mapping (``'...'``)."""
    assert mapping.startswith("'"), f"not a static value: {mapping}"
    assert mapping.endswith("'"), f"not a static value: {mapping}"
    return mapping[1:-1]


# ------------------------------------------------------------------------------------- the API


def test_preview_api_is_a_regional_rest_api_served_on_the_preview_stage(resources: Mapping[str, Any]) -> None:
    assert resources["PreviewApi"]["Type"] == "AWS::ApiGateway::RestApi"
    assert resources["PreviewApi"]["Properties"]["EndpointConfiguration"] == {"Types": ["REGIONAL"]}
    stages = [r for r in resources.values() if r["Type"] == "AWS::ApiGateway::Stage"]
    preview_stages = [s for s in stages if s["Properties"]["RestApiId"] == {"Ref": "PreviewApi"}]
    unconditional = [s["Properties"]["StageName"] for s in preview_stages if "Condition" not in s]
    assert unconditional == ["preview"]


def test_only_the_exchange_runs_the_authorizer_and_sandbox_traffic_has_no_route_here(
    api: Mapping[str, Any],
) -> None:
    assert not set(RETIRED_SANDBOX_ROUTES) & set(api["paths"]), "sandbox traffic goes to the fleet ingress"
    for path in EXCHANGE_ROUTES:
        methods = api["paths"][path]
        assert set(methods) - {"parameters"} == {"get"}, "the exchange only answers document loads"
        expected: list[dict[str, list[str]]] | None = (
            [{"PreviewAuthorizer": []}] if path.startswith("/__preview/exchange") else None
        )
        assert methods["get"].get("security") == expected, "the authorizer verifies ?mt=, only there"
    assert "security" not in api["paths"][DENIED_ROUTE]["x-amazon-apigateway-any-method"]
    assert set(api["paths"][DENIED_ROUTE]) == {"x-amazon-apigateway-any-method"}, "a refusal keeps its method"
    assert "security" not in api, "no API-wide authorizer"


def test_the_exchange_authorizer_is_a_request_authorizer_on_x_preview_token_without_cache(
    api: Mapping[str, Any],
) -> None:
    scheme = api["components"]["securitySchemes"]["PreviewAuthorizer"]
    authorizer = scheme["x-amazon-apigateway-authorizer"]
    assert (scheme["type"], scheme["in"], scheme["x-amazon-apigateway-authtype"]) == (
        "apiKey",
        "header",
        "custom",
    )
    assert authorizer["type"] == "request"
    assert authorizer["identitySource"] == "method.request.header.X-Preview-Token"
    assert authorizer["authorizerResultTtlInSeconds"] == 0
    assert "/functions/${PreviewAuthorizerFunction.Arn}/invocations" in authorizer["authorizerUri"]["Fn::Sub"]


def test_every_route_of_the_preview_api_is_an_exchange_route_or_the_denial_page(
    api: Mapping[str, Any],
) -> None:
    assert set(api["paths"]) == {*EXCHANGE_ROUTES, DENIED_ROUTE}


def test_exchange_routes_invoke_the_exchange_function_as_a_lambda_proxy(api: Mapping[str, Any]) -> None:
    for path in (*EXCHANGE_ROUTES, DENIED_ROUTE):
        route = integration(api, path)

        assert route["type"] == "aws_proxy"
        assert route["httpMethod"] == "POST"
        assert "/functions/${ExchangeFunction.Arn}/invocations" in route["uri"]["Fn::Sub"]


def test_bodies_pass_through_untouched(api: Mapping[str, Any]) -> None:
    assert api["x-amazon-apigateway-binary-media-types"] == ["*/*"]


# ---------------------------------------------------------------------------- gateway responses


def gateway_response(template: Template, api: Mapping[str, Any], response_type: str) -> dict[str, Any]:
    response: dict[str, Any] = api["x-amazon-apigateway-gateway-responses"][response_type]
    response["responseTemplates"] = {
        content_type: find_in_map(template, body)
        for content_type, body in response["responseTemplates"].items()
    }
    return response


def headers_of(response: Mapping[str, Any], frame_ancestors: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in response["responseParameters"].items():
        assert name.startswith("gatewayresponse.header."), name
        headers[name.removeprefix("gatewayresponse.header.")] = static_value(
            substitute(value, {"FrameAncestors": frame_ancestors})
        )
    return headers


@pytest.mark.parametrize("response_type", ["UNAUTHORIZED", "MISSING_AUTHENTICATION_TOKEN"])
def test_an_exchange_without_x_preview_token_or_a_route_gets_the_static_no_token_page(
    template: Template, api: Mapping[str, Any], response_type: str
) -> None:
    """No X-Preview-Token (the authorizer never runs), or no route (an unknown /__preview/ path, a
    POST with ?mt=): the denial page with the tenant's frame-ancestors, not API Gateway's JSON."""
    response = gateway_response(template, api, response_type)

    assert response["statusCode"] == "403"
    assert set(response["responseTemplates"]) == {"text/html", "application/json"}
    for page in response["responseTemplates"].values():
        assert page == render_page(denial_for(DenialReason.NO_TOKEN, None))


@pytest.mark.parametrize("response_type", ["AUTHORIZER_FAILURE", "AUTHORIZER_CONFIGURATION_ERROR"])
def test_an_authorizer_that_cannot_answer_yields_the_static_unavailable_page(
    template: Template, api: Mapping[str, Any], response_type: str
) -> None:
    response = gateway_response(template, api, response_type)

    assert response["statusCode"] == "503"
    assert headers_of(response, "https:")["Retry-After"] == str(int(RETRY_MAX_SECONDS))
    assert set(response["responseTemplates"]) == {"text/html", "application/json"}
    for page in response["responseTemplates"].values():
        assert page == authorizer_failure_page()


@pytest.mark.parametrize("response_type", ["INTEGRATION_FAILURE", "INTEGRATION_TIMEOUT"])
def test_an_origin_that_fails_or_times_out_yields_the_sandbox_not_responding_page(
    template: Template, api: Mapping[str, Any], response_type: str
) -> None:
    response = gateway_response(template, api, response_type)

    assert response["statusCode"] == "504"
    assert set(response["responseTemplates"]) == {"text/html", "application/json"}
    for page in response["responseTemplates"].values():
        assert page == origin_failure_page()
        assert "<h1>Sandbox not responding</h1>" in page
        assert '{"type": "preview.unavailable", "sandbox_id": null, "reason": "origin_unreachable"}' in page


@pytest.mark.parametrize(
    "response_type",
    [
        "UNAUTHORIZED",
        "MISSING_AUTHENTICATION_TOKEN",
        "AUTHORIZER_FAILURE",
        "AUTHORIZER_CONFIGURATION_ERROR",
        "INTEGRATION_FAILURE",
        "INTEGRATION_TIMEOUT",
    ],
)
def test_denial_pages_carry_the_exchange_security_headers_and_stay_frameable(
    template: Template, api: Mapping[str, Any], response_type: str
) -> None:
    response = gateway_response(template, api, response_type)

    headers = headers_of(response, "https://app.example.com")

    unavailable = response_type in ("AUTHORIZER_FAILURE", "AUTHORIZER_CONFIGURATION_ERROR")
    retry_after = {"Retry-After": "5"} if unavailable else {}
    assert headers == {
        **SECURITY_HEADERS,
        **retry_after,
        "Content-Security-Policy": content_security_policy("https://app.example.com"),
    }
    assert "x-frame-options" not in {name.lower() for name in headers}


def test_every_other_gateway_response_keeps_api_gateway_defaults(api: Mapping[str, Any]) -> None:
    assert set(api["x-amazon-apigateway-gateway-responses"]) == {
        "UNAUTHORIZED",
        "MISSING_AUTHENTICATION_TOKEN",
        "AUTHORIZER_FAILURE",
        "AUTHORIZER_CONFIGURATION_ERROR",
        "INTEGRATION_FAILURE",
        "INTEGRATION_TIMEOUT",
    }


# ------------------------------------------------------------------------------- functions, IAM


# The one parameter without a default, as a deployment would set it.
REQUIRED_PARAMETERS = {"SandboxOriginUrl": "https://ingress.example.com"}


def resolve_with_defaults(value: Any, template: Template) -> str:
    """An environment value as a deployment with default parameters would set it."""
    if isinstance(value, Mapping) and "Ref" in value:
        name = value["Ref"]
        parameter = template["Parameters"].get(name)
        if parameter is None:
            return f"{name}-physical-id"
        return str(parameter["Default"]) if "Default" in parameter else REQUIRED_PARAMETERS[name]
    if isinstance(value, Mapping) and "Fn::If" in value:
        condition, when_true, when_false = value["Fn::If"]
        holds = condition_with_defaults(template["Conditions"][condition], template)
        return resolve_with_defaults(when_true if holds else when_false, template)
    assert isinstance(value, str | int), value
    return str(value)


def condition_with_defaults(condition: Mapping[str, Any], template: Template) -> bool:
    ((function, argument),) = condition.items()
    if function == "Fn::Not":
        return not condition_with_defaults(argument[0], template)
    if function == "Fn::Equals":
        first, second = (resolve_with_defaults(part, template) for part in argument)
        return first == second
    if function == "Condition":
        return condition_with_defaults(template["Conditions"][argument], template)
    raise AssertionError(f"condition function {function} is not resolved here")


@pytest.mark.parametrize("logical_id", DATA_PLANE_FUNCTIONS)
def test_data_plane_functions_get_every_setting_they_read(
    template: Template, resources: Mapping[str, Any], logical_id: str
) -> None:
    variables = resources[logical_id]["Properties"]["Environment"]["Variables"]

    environment = {
        name: resolve_with_defaults(value, template)
        for name, value in variables.items()
        if name != "AWS_ENDPOINT_URL"  # local development only: absent unless LocalAwsEndpointUrl is set
    }
    settings = DataPlaneSettings.from_env(environment)

    assert variables["INPUT_PATH_PREFIX"] == {"Ref": "InputPathPrefix"}
    assert variables["FRAME_ANCESTORS"] == {"Ref": "FrameAncestors"}
    assert variables["SIGNING_KEYS_TABLE"] == {"Ref": "SigningKeysTable"}
    assert variables["ORIGIN_ASSERTION_AUDIENCE"] == {
        "Fn::If": [
            "HasOriginAssertionAudience",
            {"Ref": "OriginAssertionAudience"},
            {"Ref": "SandboxOriginUrl"},
        ]
    }
    assert settings.input_path_prefix == "/input"
    assert settings.frame_ancestors == "https:"
    assert settings.origin_audience == "https://ingress.example.com"


@pytest.mark.parametrize(
    ("logical_id", "code_uri", "handler"),
    [
        ("PreviewAuthorizerFunction", "functions/authorizer", "exchange_authorizer.lambda_handler"),
        ("ExchangeFunction", "functions/exchange", "preview_exchange.lambda_handler"),
    ],
)
def test_data_plane_functions_run_their_handlers_in_128_mb(
    logical_id: str, code_uri: str, handler: str
) -> None:
    properties = sam_template()["Resources"][logical_id]["Properties"]

    assert properties["CodeUri"].rstrip("/") == code_uri
    assert properties["Handler"] == handler
    assert properties["MemorySize"] == 128
    assert (PROJECT_ROOT / code_uri / (handler.split(".")[0] + ".py")).is_file()


RENEWALS_ONLY = {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["renewals"]}}


@pytest.mark.parametrize("logical_id", DATA_PLANE_FUNCTIONS)
def test_data_plane_functions_may_only_query_keys_and_revocations_record_renewals_and_decrypt_for_signing(
    resources: Mapping[str, Any], logical_id: str
) -> None:
    role = resources[resources[logical_id]["Properties"]["Role"]["Fn::GetAtt"][0]]["Properties"]

    statements = [
        statement for policy in role["Policies"] for statement in policy["PolicyDocument"]["Statement"]
    ]

    # The exchange reads the tenant's frame-ancestors (sandbox -> tenant -> declared origins) ...
    frame_ancestors = [
        (
            "Allow",
            "dynamodb:GetItem",
            [{"Fn::GetAtt": ["TenantsTable", "Arn"]}, {"Fn::GetAtt": ["SandboxesTable", "Arn"]}],
            None,
        )
    ]
    # ... and records a token's first use (its record and one audit entry).
    first_use = [
        ("Allow", "dynamodb:UpdateItem", {"Fn::GetAtt": ["PreviewTokensTable", "Arn"]}, None),
        ("Allow", "dynamodb:PutItem", {"Fn::GetAtt": ["AuditTable", "Arn"]}, None),
    ]
    verifier = [  # only the authorizer verifies tokens (the exchange sets cookies from its context)
        ("Allow", "dynamodb:Query", {"Fn::GetAtt": ["SigningKeysTable", "Arn"]}, None),
        ("Allow", "dynamodb:Query", {"Fn::GetAtt": ["RevocationsTable", "Arn"]}, None),
        # ... and records a renewal in place's link, in the renewals partition of that table only.
        ("Allow", "dynamodb:PutItem", {"Fn::GetAtt": ["RevocationsTable", "Arn"]}, RENEWALS_ONLY),
        ("Allow", "kms:Decrypt", {"Fn::GetAtt": ["SigningKeyMasterKey", "Arn"]}, SIGNING_CONTEXT),
        ("Allow", "kms:Decrypt", {"Fn::GetAtt": ["SigningKeyMasterKey", "Arn"]}, ORIGIN_KEY_CONTEXT),
    ]
    expected = [*frame_ancestors, *first_use] if logical_id == "ExchangeFunction" else verifier
    assert [(s["Effect"], s["Action"], s["Resource"], s.get("Condition")) for s in statements] == expected
    assert sorted(arn.rsplit("/", 1)[-1] for arn in role["ManagedPolicyArns"]) == [
        "AWSLambdaBasicExecutionRole",
        "AWSXrayWriteOnlyAccess",
    ]


def referenced_resource(value: Mapping[str, Any]) -> str:
    """The logical id a ``Ref`` or ``Fn::GetAtt`` points at."""
    target = value["Ref"] if "Ref" in value else value["Fn::GetAtt"][0]
    assert isinstance(target, str)
    return target


def test_api_gateway_may_invoke_the_data_plane_functions_only_through_the_preview_api(
    resources: Mapping[str, Any],
) -> None:
    permissions = {
        function: r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Permission"
        and (function := referenced_resource(r["Properties"]["FunctionName"])) in DATA_PLANE_FUNCTIONS
    }
    prefix = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${PreviewApi}"

    assert set(permissions) == set(DATA_PLANE_FUNCTIONS)
    for permission in permissions.values():
        assert permission["Principal"] == "apigateway.amazonaws.com"
        assert permission["Action"] == "lambda:InvokeFunction"
    assert permissions["PreviewAuthorizerFunction"]["SourceArn"] == {"Fn::Sub": f"{prefix}/authorizers/*"}
    assert permissions["ExchangeFunction"]["SourceArn"] == {"Fn::Sub": f"{prefix}/*/*/__preview/*"}


# --------------------------------------------------------------- custom domain and CloudFront


PSEUDO_PARAMETERS = {"AWS::Region": "eu-west-1"}


def condition_holds(expression: Any, template: Template, parameters: Mapping[str, str]) -> bool:
    def value(operand: Any) -> Any:
        if isinstance(operand, Mapping) and "Ref" in operand:
            name = operand["Ref"]
            if name.startswith("AWS::"):  # pseudo parameters: the region the stack deploys in
                return parameters.get(name, PSEUDO_PARAMETERS[name])
            return parameters.get(name, template["Parameters"][name].get("Default"))
        return operand

    ((function, argument),) = expression.items()
    if function == "Condition":
        return condition_holds(template["Conditions"][argument], template, parameters)
    if function == "Fn::Equals":
        return bool(value(argument[0]) == value(argument[1]))
    if function == "Fn::Not":
        return not condition_holds(argument[0], template, parameters)
    if function == "Fn::And":
        return all(condition_holds(operand, template, parameters) for operand in argument)
    if function == "Fn::Or":
        return any(condition_holds(operand, template, parameters) for operand in argument)
    raise AssertionError(f"unsupported condition function {function}")


def deployed_resources(template: Template, parameters: Mapping[str, str]) -> set[str]:
    return {
        logical_id
        for logical_id, resource in template["Resources"].items()
        if "Condition" not in resource
        or condition_holds({"Condition": resource["Condition"]}, template, parameters)
    }


REGIONAL_CERT = "arn:aws:acm:eu-west-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"
EDGE_CERT = "arn:aws:acm:us-east-1:123456789012:certificate/66666666-7777-8888-9999-000000000000"
EDGE_RESOURCES = {
    "PreviewDomainName",
    "PreviewBasePathMapping",
    "PreviewEdge",
    "PreviewDistribution",
}


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({}, set()),
        ({"PreviewCertificateArn": REGIONAL_CERT}, {"PreviewDomainName", "PreviewBasePathMapping"}),
        ({"PreviewCertificateArn": REGIONAL_CERT, "CloudFrontCertificateArn": EDGE_CERT}, EDGE_RESOURCES),
        ({"CloudFrontCertificateArn": EDGE_CERT}, set()),
    ],
    ids=["no-certificates", "regional-only", "both-certificates", "cloudfront-certificate-only"],
)
def test_custom_domain_and_cloudfront_are_deployed_only_with_their_certificates(
    template: Template, parameters: Mapping[str, str], expected: set[str]
) -> None:
    deployed = deployed_resources(template, parameters)

    assert deployed & EDGE_RESOURCES == expected
    assert {"PreviewApi", *DATA_PLANE_FUNCTIONS} <= deployed


def test_custom_domain_serves_every_sandbox_host_from_the_preview_stage(resources: Mapping[str, Any]) -> None:
    domain = resources["PreviewDomainName"]["Properties"]
    mapping = resources["PreviewBasePathMapping"]["Properties"]

    assert domain["DomainName"] == {"Fn::Sub": "*.${PreviewDomain}"}
    assert domain["RegionalCertificateArn"] == {"Ref": "PreviewCertificateArn"}
    assert domain["EndpointConfiguration"] == {"Types": ["REGIONAL"]}
    assert domain["SecurityPolicy"] == "TLS_1_2"
    assert mapping["DomainName"] == {"Ref": "PreviewDomainName"}
    assert mapping["RestApiId"] == {"Ref": "PreviewApi"}
    assert "BasePath" not in mapping, "sandbox paths start at /"
    assert resources[mapping["Stage"]["Ref"]]["Properties"]["StageName"] == "preview"


def test_cloudfront_forwards_everything_uncached_to_the_regional_domain(resources: Mapping[str, Any]) -> None:
    config = resources["PreviewDistribution"]["Properties"]["DistributionConfig"]
    origin, ingress = config["Origins"]  # the fleet ingress: tests/integration/test_edge_template.py
    behavior = config["DefaultCacheBehavior"]

    assert config["Aliases"] == [{"Fn::Sub": "*.${PreviewDomain}"}]
    assert config["ViewerCertificate"]["AcmCertificateArn"] == {"Ref": "CloudFrontCertificateArn"}
    assert origin["DomainName"] == {"Fn::GetAtt": ["PreviewDomainName", "RegionalDomainName"]}
    assert ingress["Id"] == "fleet-ingress"
    assert origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    assert behavior["TargetOriginId"] == origin["Id"]
    assert behavior["ViewerProtocolPolicy"] == "redirect-to-https"
    assert behavior["CachePolicyId"] == "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"  # CachingDisabled
    assert behavior["OriginRequestPolicyId"] == {"Ref": "PreviewOriginRequestPolicy"}  # AllViewer + proto
    assert set(behavior["AllowedMethods"]) == {"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"}
    assert behavior["FunctionAssociations"] == [
        {
            "EventType": "viewer-request",
            "FunctionARN": {"Fn::GetAtt": ["PreviewEdge", "FunctionMetadata.FunctionARN"]},
        },
    ]
    assert resources["PreviewEdge"]["Properties"]["FunctionConfig"]["Runtime"] == "cloudfront-js-2.0"


def test_outputs_name_the_api_url_and_where_to_point_the_preview_domain(template: Template) -> None:
    outputs = template["Outputs"]

    assert outputs["PreviewApiUrl"]["Value"] == {
        "Fn::Sub": "https://${PreviewApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/preview"
    }
    assert outputs["PreviewDomainTarget"]["Condition"] == "HasPreviewDomain"
    assert outputs["PreviewDomainTarget"]["Value"] == {
        "Fn::If": [
            "HasCloudFront",
            {"Fn::GetAtt": ["PreviewDistribution", "DomainName"]},
            {"Fn::GetAtt": ["PreviewDomainName", "RegionalDomainName"]},
        ]
    }


# --------------------------------------------------------------------------------- the edge
# PreviewEdge, its ?mt= handling and its Python mirror: tests/integration/test_preview_edge_function.py


# ------------------------------------------------------------------------------------- events

DATA_PLANE_EVENTS = sorted(p.stem for p in EVENTS_DIR.glob("*.json") if p.stem.startswith("exchange_"))


@pytest.mark.parametrize("name", DATA_PLANE_EVENTS)
def test_data_plane_events_target_routes_the_template_defines(api: Mapping[str, Any], name: str) -> None:
    event = load_event(name, token="t")
    route = api["paths"][event["resource"]]
    host = event["headers"]["Host"]

    assert host == event["requestContext"]["domainName"]
    assert host.endswith(".sandboxes.example.com")
    assert event["requestContext"]["stage"] == "preview"
    if event["resource"] == DENIED_ROUTE:
        assert "security" not in route["x-amazon-apigateway-any-method"]
        assert set(event["headers"]) >= {"x-preview-denial", "x-preview-denial-sandbox"}
    else:
        security = route[event["httpMethod"].lower()].get("security")
        exchange = event["resource"].startswith("/__preview/exchange")
        assert security == ([{"PreviewAuthorizer": []}] if exchange else None)
        viewer_path = "/" + (event["pathParameters"] or {}).get("proxy", "")
        if event["resource"].startswith("/__preview/cookie-check"):
            # the browser follows the exchange's redirect here; the edge leaves /__preview/ alone
            assert edge_route(event["path"], True) == event["path"]
        else:
            assert edge_route(viewer_path, True) == event["path"], "the edge produces this exchange request"
            assert "mt" not in (event["multiValueQueryStringParameters"] or {}), "the edge took mt off"
            assert fallback_token(event["headers"]) == "t", "the edge passes the token in X-Preview-Token"
