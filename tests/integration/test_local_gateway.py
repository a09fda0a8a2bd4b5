"""The local API Gateway emulation: routes from template.yaml, policy evaluation, Gateway Responses.

The gateway is driven with the real template (after the SAM transform) and fake functions, so
each behaviour of API Gateway the local stack relies on is pinned here: which route a request
reaches and what its function receives, what an authorizer's policy allows, and what a denied or
failed request renders. The preview API serves only ``/__preview/*`` (the exchange, the cookie
check, the denial page): allowed traffic goes from the edge to the fleet ingress, so no sandbox
route, and no request to a sandbox origin, goes through API Gateway any more (issue 13). The
authorizer's emulation is pinned on one route guarded by the template's ``PreviewAuthorizer``
scheme (:func:`guarded`), as the sandbox routes were.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerResponse,
)
from preview_local.authorizer_policy import (
    AuthorizerOutput,
    AuthorizerOutputError,
    PolicyDecision,
    method_arn,
)
from preview_local.cfn_template import project_template
from preview_local.deployment import LocalDeployment, deploy_locally
from preview_local.gateway import RestApiGateway
from preview_local.gateway_responses import (
    GatewayError,
    GatewayResponseTemplateError,
    render_gateway_response,
    render_template,
)
from preview_local.http_messages import HttpRequest
from preview_local.rest_api import GatewayResponseTemplate, LambdaAuthorizer, Method, Resource, RestApi
from preview_tokens.data_plane.access import DenialReason
from preview_tokens.data_plane.denial_page import (
    authorizer_failure_page,
    content_security_policy,
    denial_for,
    render_page,
)
from preview_tokens.settings import DataPlaneSettings, MintSettings

from tests.support.template import placeholder_physical_ids

PORT = 3999
HOST = f"sbx-demo.sandboxes.localhost:{PORT}"
ARN_PREFIX = "arn:aws:execute-api:us-east-1:123456789012:abc123/preview"
FRAME_ANCESTORS = f"http://127.0.0.1:{PORT}"
TYPE_AND_MESSAGE = '{"type": "$context.error.responseType", "message": $context.error.messageString}'


# ----------------------------------------------------------------------------- fixtures


@dataclass
class FakeFunction:
    """A Lambda function that records its events and answers with ``answer`` (or raises it)."""

    answer: Any = None
    events: list[dict[str, Any]] = field(default_factory=list)

    def invoke(self, event: dict[str, Any]) -> Any:
        self.events.append(event)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.fixture(scope="module")
def deployment() -> LocalDeployment:
    return deploy_locally(
        {
            "PreviewDomain": "sandboxes.localhost",
            "SandboxOriginUrl": "https://fleet.example.com",
            "FrameAncestors": FRAME_ANCESTORS,
        },
        placeholder_physical_ids(),
    )


@pytest.fixture(scope="module")
def control_plane(deployment: LocalDeployment) -> RestApi:
    return RestApi.from_deployment(deployment.rest_apis["ControlPlaneApi"])


@pytest.fixture(scope="module")
def data_plane(deployment: LocalDeployment) -> RestApi:
    return RestApi.from_deployment(deployment.rest_apis["PreviewApi"])


@pytest.fixture(scope="module")
def guarded(data_plane: RestApi) -> RestApi:
    """The preview API plus ``ANY /{proxy+}`` guarded by the template's ``PreviewAuthorizer`` scheme
    (REQUEST, no cache), integrated with the exchange function: a sandbox route as it was before."""
    exchange = data_plane.match("GET", "/__preview/exchange")
    assert exchange is not None
    authorizer = LambdaAuthorizer("PreviewAuthorizer", "request", "PreviewAuthorizerFunction", 0, ())
    route = Resource("/{proxy+}", {"ANY": Method("ANY", exchange.method.integration, authorizer)})
    return dataclasses.replace(data_plane, resources=(*data_plane.resources, route))


def request(
    method: str, path: str, query: str = "", headers: tuple[tuple[str, str], ...] = ()
) -> HttpRequest:
    return HttpRequest(method, path, query, (("Host", HOST), ("Accept", "text/html"), *headers))


def allow(
    sandbox_id: str = "sbx-demo", scope: str = "read", origin_cookie: str = "", arn_prefix: str = ARN_PREFIX
) -> dict[str, Any]:
    """An Allow as the preview authorizer answers it: every path of the API for the method."""
    response = APIGatewayAuthorizerResponse.from_route_arn(
        f"{arn_prefix}/GET/",
        principal_id=sandbox_id,
        context={"sandbox_id": sandbox_id, "scope": scope, "origin_cookie": origin_cookie},
    )
    response.allow_all_routes(http_method="GET")
    answer: dict[str, Any] = response.asdict()
    return answer


def deny(reason: DenialReason, sandbox_id: str | None = None) -> dict[str, Any]:
    response = APIGatewayAuthorizerResponse.from_route_arn(
        f"{ARN_PREFIX}/GET/",
        principal_id="anonymous",
        context={"reason": reason.value, "sandbox_id": sandbox_id or ""},
    )
    response.deny_all_routes()
    answer: dict[str, Any] = response.asdict()
    return answer


TOKEN_HEADER = (("X-Preview-Token", "mp_x"),)
# What the exchange authorizer answers (always an Allow; the refusal, if any, is in its context).
ALLOW_ANY: dict[str, Any] = {
    "principalId": "p",
    "policyDocument": {"Statement": [{"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*"}]},
}


def gateway(api: RestApi, **functions: FakeFunction) -> RestApiGateway:
    return RestApiGateway(api, functions, PORT)


# ---------------------------------------------------------------- routes from template


def test_every_api_event_of_the_mint_function_is_a_control_plane_route(control_plane: RestApi) -> None:
    events = project_template()["Resources"]["MintFunction"]["Properties"]["Events"]
    routes = [(e["Properties"]["Method"].upper(), e["Properties"]["Path"]) for e in events.values()]
    assert routes, "the template declares no Api events"
    for method, path in routes:
        matched = control_plane.match(method, path.replace("{id}", "sbx-1"))
        assert matched is not None, f"{method} {path} is not served"
        assert matched.resource.path == path
        assert matched.method.integration.function_name == "MintFunction"
    assert control_plane.stage == "v1"


def test_a_mint_route_passes_its_path_parameter(control_plane: RestApi) -> None:
    matched = control_plane.match("POST", "/api/v1/sandboxes/sbx-1/preview-token")
    assert matched is not None
    assert matched.path_parameters == {"id": "sbx-1"}
    assert matched.method.authorizer is None


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/sandboxes/sbx-1/preview-token"),  # the resource exists, not the method
        ("POST", "/api/v1/sandboxes/preview-token"),
        ("POST", "/api/v1/sandboxes/sbx-1/preview-token/extra"),
        ("GET", "/api/v2/openapi.json"),
        ("GET", "/"),
    ],
)
def test_what_the_template_does_not_declare_is_missing_authentication_token(
    control_plane: RestApi, method: str, path: str
) -> None:
    mint = FakeFunction({"statusCode": 200, "body": "{}"})
    response = gateway(control_plane, MintFunction=mint).handle(request(method, path))
    assert response.status == 404
    body = json.loads(response.body)
    assert body["error"]["code"] == "not_found"
    assert body["request_id"] == response.header("X-Request-Id")
    assert mint.events == []


SPEC_CODES = {
    "DEFAULT_4XX": (400, "invalid_request"),
    "DEFAULT_5XX": (500, "internal_error"),
    "MISSING_AUTHENTICATION_TOKEN": (404, "not_found"),
    "RESOURCE_NOT_FOUND": (404, "not_found"),
    "UNAUTHORIZED": (401, "unauthorized"),
    "ACCESS_DENIED": (403, "forbidden"),
    "WAF_FILTERED": (403, "forbidden"),
    "THROTTLED": (429, "rate_limited"),
    "QUOTA_EXCEEDED": (429, "rate_limited"),
    "REQUEST_TOO_LARGE": (413, "invalid_request"),
    "INTEGRATION_FAILURE": (503, "unavailable"),
    "INTEGRATION_TIMEOUT": (503, "unavailable"),
}


@pytest.mark.parametrize("response_type", sorted(SPEC_CODES))
def test_every_answer_of_the_control_plane_gateway_is_in_the_spec_error_shape(
    control_plane: RestApi, response_type: str
) -> None:
    spec = control_plane.gateway_responses[response_type]
    status, code = SPEC_CODES[response_type]
    builtin_status = 400 if response_type == "DEFAULT_4XX" else 500
    response = render_gateway_response(
        {response_type: spec},
        GatewayError("BAD_GATEWAY" if builtin_status == 500 else "UNAUTHORIZED", "req-7", {}, {}, "")
        if response_type.startswith("DEFAULT_")
        else GatewayError(response_type, "req-7", {}, {}, ""),
    )

    body = json.loads(response.body)
    assert set(body) == {"error", "request_id"}
    assert body["request_id"] == "req-7" == response.header("X-Request-Id")
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert response.header("Cache-Control") == "no-store"
    if not response_type.startswith("DEFAULT_"):
        assert spec.status_code == status
    if status in (429, 503):
        assert body["error"]["retryable"] is True
        assert body["error"]["retry_after_ms"] == int(response.header("Retry-After") or 0) * 1000


def test_the_control_plane_customizes_every_response_type_it_can_meet(control_plane: RestApi) -> None:
    assert set(control_plane.gateway_responses) == set(SPEC_CODES)


@pytest.mark.parametrize(
    ("method", "path", "resource"),
    [
        ("GET", "/__preview/exchange", "/__preview/exchange"),
        ("GET", "/__preview/exchange/app/index.html", "/__preview/exchange/{proxy+}"),
        ("GET", "/__preview/cookie-check/app", "/__preview/cookie-check/{proxy+}"),
        ("GET", "/__preview/denied", "/__preview/denied"),
        ("POST", "/__preview/denied", "/__preview/denied"),
    ],
)
def test_data_plane_routes_come_from_the_preview_api_definition(
    data_plane: RestApi, method: str, path: str, resource: str
) -> None:
    matched = data_plane.match(method, path)
    assert matched is not None
    assert matched.resource.path == resource
    assert matched.method.integration.function_name == "ExchangeFunction"


@pytest.mark.parametrize("path", ["/", "/app.js", "/input/keys", "/@vite/client"])
def test_no_sandbox_path_is_a_route_of_the_preview_api_and_only_the_exchange_runs_the_authorizer(
    data_plane: RestApi, path: str
) -> None:
    assert data_plane.match("GET", path) is None
    guarded = {r.path: m.authorizer for r in data_plane.resources for m in r.methods.values() if m.authorizer}
    assert set(guarded) == {"/__preview/exchange", "/__preview/exchange/{proxy+}"}
    for authorizer in guarded.values():
        assert (authorizer.function_name, authorizer.result_ttl_seconds, authorizer.identity_sources) == (
            "PreviewAuthorizerFunction",
            0,
            ("method.request.header.X-Preview-Token",),
        )


def test_the_exchange_without_x_preview_token_gets_the_static_no_token_page(data_plane: RestApi) -> None:
    """The identity source missing: API Gateway answers UNAUTHORIZED without calling the authorizer."""
    authorizer, exchange = FakeFunction(allow()), FakeFunction({"statusCode": 302, "body": ""})
    response = gateway(data_plane, PreviewAuthorizerFunction=authorizer, ExchangeFunction=exchange).handle(
        request("GET", "/__preview/exchange/app")
    )
    assert (response.status, authorizer.events, exchange.events) == (403, [], [])
    assert response.body.decode() == render_page(denial_for(DenialReason.NO_TOKEN, None))
    assert response.header("Content-Security-Policy") == content_security_policy(FRAME_ANCESTORS)


@pytest.mark.parametrize(
    ("path", "proxy"),
    [
        ("/__preview/exchange/@vite/client", "@vite/client"),
        ("/__preview/exchange/%40vite/a%2Fb", "%40vite/a%2Fb"),
    ],
)
def test_a_proxy_path_parameter_reaches_the_function_as_sent(
    data_plane: RestApi, path: str, proxy: str
) -> None:
    """REST APIs pass ``path`` and ``pathParameters`` still percent-encoded (serverless/serverless#5037:
    ``/posts/%40`` arrives as ``%40``; middleapi/standard-server#93 on live captures), never re-encoded."""
    exchange = FakeFunction({"statusCode": 302, "headers": {"Location": "/"}, "body": ""})

    gateway(data_plane, ExchangeFunction=exchange, PreviewAuthorizerFunction=FakeFunction(ALLOW_ANY)).handle(
        request("GET", path, headers=TOKEN_HEADER)
    )

    assert exchange.events[0]["pathParameters"] == {"proxy": proxy}
    assert exchange.events[0]["path"] == path


def test_a_non_get_exchange_request_does_not_fall_back_to_the_proxy_route(data_plane: RestApi) -> None:
    assert data_plane.match("POST", "/__preview/exchange/a") is None


def test_local_function_environment_satisfies_the_settings(deployment: LocalDeployment) -> None:
    environment = {
        **deployment.combined_environment(),
        "PREVIEW_URL_SCHEME": "http",
        "PREVIEW_URL_PORT": "3000",
    }
    mint = MintSettings.from_env(environment)
    data_plane = DataPlaneSettings.from_env(environment)
    assert mint.tenants_table == placeholder_physical_ids()["TenantsTable"]
    assert mint.previews.url_for("sbx-1", "mp_x") == "http://sbx-1.sandboxes.localhost:3000?mt=mp_x"
    assert data_plane.input_path_prefix == "/input"
    assert data_plane.frame_ancestors == FRAME_ANCESTORS


# ------------------------------------------------------------------- policy evaluation


@pytest.mark.parametrize(
    ("method", "path", "decision"),
    [
        ("GET", "/", PolicyDecision.ALLOW),
        ("GET", "/static/app.js", PolicyDecision.ALLOW),
        ("POST", "/input/keys", PolicyDecision.IMPLICIT_DENY),
    ],
)
def test_an_allow_for_one_method_covers_every_path_of_that_method(
    method: str, path: str, decision: PolicyDecision
) -> None:
    output = AuthorizerOutput.parse(allow())
    arn = method_arn("us-east-1", "123456789012", "abc123", "preview", method, path)
    assert output.decide(arn) is decision


def test_a_deny_all_denies_the_root_and_any_path() -> None:
    output = AuthorizerOutput.parse(deny(DenialReason.EXPIRED, "sbx-demo"))
    assert output.decide(f"{ARN_PREFIX}/GET/") is PolicyDecision.EXPLICIT_DENY
    assert output.decide(f"{ARN_PREFIX}/DELETE/a/b/c") is PolicyDecision.EXPLICIT_DENY


def test_an_explicit_deny_wins_over_an_allow() -> None:
    answer = allow()
    answer["policyDocument"]["Statement"].append(
        {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": f"{ARN_PREFIX}/GET/admin/*"}
    )
    output = AuthorizerOutput.parse(answer)
    assert output.decide(f"{ARN_PREFIX}/GET/admin/users") is PolicyDecision.EXPLICIT_DENY
    assert output.decide(f"{ARN_PREFIX}/GET/app") is PolicyDecision.ALLOW


@pytest.mark.parametrize(
    ("action", "resource", "arn", "decision"),
    [
        ("execute-api:*", f"{ARN_PREFIX}/GET/*", f"{ARN_PREFIX}/GET/x", PolicyDecision.ALLOW),
        ("*", "*", f"{ARN_PREFIX}/PUT/x", PolicyDecision.ALLOW),
        ("EXECUTE-API:invoke", f"{ARN_PREFIX}/GET/x", f"{ARN_PREFIX}/GET/x", PolicyDecision.ALLOW),
        ("execute-api:Invoke", f"{ARN_PREFIX}/GET/?", f"{ARN_PREFIX}/GET/x", PolicyDecision.ALLOW),
        ("execute-api:Invoke", f"{ARN_PREFIX}/GET/?", f"{ARN_PREFIX}/GET/xy", PolicyDecision.IMPLICIT_DENY),
        ("execute-api:Invoke", f"{ARN_PREFIX}/GET/X", f"{ARN_PREFIX}/GET/x", PolicyDecision.IMPLICIT_DENY),
        ("execute-api:ManageConnections", "*", f"{ARN_PREFIX}/GET/x", PolicyDecision.IMPLICIT_DENY),
        (
            "execute-api:Invoke",
            f"{ARN_PREFIX}/GET/a.b",
            f"{ARN_PREFIX}/GET/aXb",
            PolicyDecision.IMPLICIT_DENY,
        ),
    ],
)
def test_iam_wildcards_in_actions_and_resources(
    action: str, resource: str, arn: str, decision: PolicyDecision
) -> None:
    output = AuthorizerOutput.parse(
        {
            "principalId": "p",
            "policyDocument": {
                "Version": "2012-10-17",
                "Statement": {"Action": action, "Effect": "Allow", "Resource": resource},
            },
        }
    )
    assert output.decide(arn) is decision


@pytest.mark.parametrize(
    "answer",
    [
        None,
        [],
        {"policyDocument": {"Statement": []}},
        {"principalId": "p"},
        {"principalId": "p", "policyDocument": {"Statement": []}},
        {
            "principalId": "p",
            "policyDocument": {"Statement": [{"Effect": "Maybe", "Action": "*", "Resource": "*"}]},
        },
        {"principalId": "p", "policyDocument": {"Statement": [{"Effect": "Allow", "Resource": "*"}]}},
        {
            "principalId": "p",
            "policyDocument": {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]},
            "context": {"nested": {"a": 1}},
        },
    ],
)
def test_answers_api_gateway_rejects(answer: object) -> None:
    with pytest.raises(AuthorizerOutputError):
        AuthorizerOutput.parse(answer)


def test_context_values_reach_templates_as_text() -> None:
    answer = {**allow(), "context": {"flag": True, "count": 3, "name": "x"}}
    assert AuthorizerOutput.parse(answer).context_strings() == {"flag": "true", "count": "3", "name": "x"}


# ----------------------------------------------------------------- gateway responses


def test_a_deny_gets_api_gateways_default_access_denied_the_template_customizes_none(
    guarded: RestApi,
) -> None:
    """The exchange's authorizer always allows (its refusals are the exchange's pages)."""
    authorizer = FakeFunction(deny(DenialReason.EXPIRED, "sbx-demo"))
    response = gateway(guarded, PreviewAuthorizerFunction=authorizer).handle(request("GET", "/app"))
    assert response.status == 403
    assert json.loads(response.body) == {"message": "User is not authorized to access this resource"}


@pytest.mark.parametrize(
    "answer",
    [RuntimeError("boom"), {"principalId": "p"}, "Allow", {**allow(), "context": {"list": [1]}}],
)
def test_an_authorizer_that_fails_renders_the_unavailable_page(guarded: RestApi, answer: object) -> None:
    authorizer = FakeFunction(answer)
    response = gateway(guarded, PreviewAuthorizerFunction=authorizer).handle(request("GET", "/app"))
    assert response.status == 503
    assert response.body.decode() == authorizer_failure_page()


def test_an_authorizer_raising_unauthorized_is_the_templates_unauthorized_response(guarded: RestApi) -> None:
    authorizer = FakeFunction(RuntimeError("Unauthorized"))
    response = gateway(guarded, PreviewAuthorizerFunction=authorizer).handle(request("GET", "/app"))
    assert response.status == 403
    assert response.body.decode() == render_page(denial_for(DenialReason.NO_TOKEN, None))


def test_template_references_are_substituted_and_unknown_ones_render_empty() -> None:
    rendered = render_template(
        "<b>$context.authorizer.title</b> ${context.authorizer.title} "
        "[$context.authorizer.absent] $context.requestId",
        {"authorizer.title": "Hi", "requestId": "r-1"},
    )
    assert rendered == "<b>Hi</b> Hi [] r-1"


def test_velocity_directives_are_refused_rather_than_rendered_wrongly() -> None:
    with pytest.raises(GatewayResponseTemplateError):
        render_template("#if($context.authorizer.x)yes#end", {})


def error(response_type: str, accept: str = "", context: dict[str, str] | None = None) -> GatewayError:
    return GatewayError(response_type, "req-1", context or {}, {"X-Trace": "t-1"}, accept)


def test_an_uncustomized_type_falls_back_to_its_default_family() -> None:
    customized = {
        "DEFAULT_4XX": GatewayResponseTemplate(
            None,
            {"gatewayresponse.header.X-Trace": "method.request.header.X-Trace"},
            {"application/json": TYPE_AND_MESSAGE},
        )
    }
    response = render_gateway_response(customized, error("UNAUTHORIZED"))
    assert response.status == 401
    assert response.header("X-Trace") == "t-1"
    assert json.loads(response.body) == {"type": "UNAUTHORIZED", "message": "Unauthorized"}


def test_without_customization_api_gateways_built_in_json_is_returned() -> None:
    response = render_gateway_response({}, error("ACCESS_DENIED"))
    assert response.status == 403
    assert json.loads(response.body) == {"message": "User is not authorized to access this resource"}


def test_the_template_is_chosen_by_accept_and_the_status_can_be_overridden() -> None:
    customized = {
        "ACCESS_DENIED": GatewayResponseTemplate(
            451,
            {"gatewayresponse.header.X-Reason": "context.authorizer.reason"},
            {"application/json": '{"json": true}', "text/html": "<p>$context.authorizer.reason</p>"},
        )
    }
    html = render_gateway_response(customized, error("ACCESS_DENIED", "text/html,*/*", {"reason": "expired"}))
    json_response = render_gateway_response(customized, error("ACCESS_DENIED", "image/png"))
    assert (html.status, html.body, html.header("X-Reason")) == (451, b"<p>expired</p>", "expired")
    assert html.header("Content-Type") == "text/html"
    assert json_response.body == b'{"json": true}'


# -------------------------------------------------------------- integrations and events


def test_the_authorizer_event_is_a_rest_request_event(guarded: RestApi) -> None:
    authorizer = FakeFunction(deny(DenialReason.NO_TOKEN))
    gateway(guarded, PreviewAuthorizerFunction=authorizer).handle(request("POST", "/input/keys", "a=1&a=2"))
    event = authorizer.events[0]
    api_id = guarded.api_id
    assert event["type"] == "REQUEST"
    assert (
        event["methodArn"] == f"arn:aws:execute-api:us-east-1:123456789012:{api_id}/preview/POST/input/keys"
    )
    assert (event["resource"], event["path"], event["httpMethod"]) == ("/{proxy+}", "/input/keys", "POST")
    assert event["headers"]["Host"] == HOST
    assert event["queryStringParameters"] == {"a": "2"}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"]}
    assert event["pathParameters"] == {"proxy": "input/keys"}
    assert event["requestContext"]["domainName"] == "sbx-demo.sandboxes.localhost"
    assert event["requestContext"]["stage"] == "preview"


def test_the_exchange_gets_a_proxy_event_and_its_answer_is_returned(data_plane: RestApi) -> None:
    exchange = FakeFunction(
        {
            "statusCode": 302,
            "headers": {"Location": "/app"},
            "multiValueHeaders": {"Set-Cookie": ["s=1; HttpOnly"]},
            "body": "",
        }
    )
    authorizer = FakeFunction({**ALLOW_ANY, "context": {"token": "mp_x"}})
    response = gateway(data_plane, ExchangeFunction=exchange, PreviewAuthorizerFunction=authorizer).handle(
        request("GET", "/__preview/exchange/app", "mt=mp_x", TOKEN_HEADER)
    )
    event = exchange.events[0]
    assert (response.status, response.header("Location"), response.header("Set-Cookie")) == (
        302,
        "/app",
        "s=1; HttpOnly",
    )
    assert event["resource"] == "/__preview/exchange/{proxy+}"
    assert event["pathParameters"] == {"proxy": "app"}
    assert event["multiValueQueryStringParameters"] == {"mt": ["mp_x"]}
    assert event["requestContext"]["domainName"] == "sbx-demo.sandboxes.localhost"
    assert event["body"] is None
    assert event["isBase64Encoded"] is False
    assert event["requestContext"]["authorizer"]["token"] == "mp_x"
    assert authorizer.events[0]["headers"]["X-Preview-Token"] == "mp_x"


def test_a_malformed_proxy_answer_is_a_502(data_plane: RestApi) -> None:
    exchange = FakeFunction({"body": "no status"})
    response = gateway(
        data_plane, ExchangeFunction=exchange, PreviewAuthorizerFunction=FakeFunction(ALLOW_ANY)
    ).handle(request("GET", "/__preview/exchange", headers=TOKEN_HEADER))
    assert response.status == 502
