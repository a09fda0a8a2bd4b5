"""The stream path as template.yaml deploys it, from the SAM transform's CloudFormation output.

CloudFront sends each of ``StreamPathPatterns`` straight to the fleet's stream ingress, with the
stream verifier function on viewer requests (keys from the KeyValueStore), the WebSocket
handshake headers forwarded, our cookies not, and nothing cached.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pytest

from tests.support.template import cloudformation

CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
WEBSOCKET_HEADERS = {
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
}
EDGE_HEADERS = {"X-Preview-Assertion", "X-Sandbox-Id", "X-Preview-Scope", "X-Preview-Expires"}
OUR_COOKIES = {"__Host-mp_session", "__Host-mp_session_ends", "__Host-mp_origin"}
Template = dict[str, Any]


@pytest.fixture(scope="module")
def template() -> Template:
    return cloudformation()


@pytest.fixture(scope="module")
def resources(template: Template) -> dict[str, Any]:
    found: dict[str, Any] = template["Resources"]
    return found


def distribution(resources: Mapping[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = resources["PreviewDistribution"]["Properties"]["DistributionConfig"]
    return config


def evaluate(value: Any, template: Template, parameters: Mapping[str, Any]) -> Any:
    """The intrinsics the stream conditions use (Ref, Join, Split, Select, Equals, Not, And, Condition)."""
    if isinstance(value, list):
        return [evaluate(item, template, parameters) for item in value]
    if not isinstance(value, dict) or len(value) != 1:
        return value
    ((key, argument),) = value.items()
    if key == "Ref":
        return parameters[argument]
    if key == "Condition":
        return evaluate(template["Conditions"][argument], template, parameters)
    args = evaluate(argument, template, parameters)
    if key == "Fn::Join":
        return args[0].join(args[1])
    if key == "Fn::Split":
        return args[1].split(args[0])
    if key == "Fn::Select":
        return args[1][int(args[0])]
    if key == "Fn::Equals":
        return args[0] == args[1]
    if key == "Fn::Not":
        return not args[0]
    if key == "Fn::And":
        return all(args)
    raise AssertionError(f"unexpected intrinsic {key}")


def stream_behaviours(template: Template, parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The cache behaviours CloudFormation would create for these parameter values."""
    conditional = distribution(template["Resources"])["CacheBehaviors"]
    condition, when_true, _ = conditional["Fn::If"]
    if not evaluate({"Condition": condition}, template, parameters):
        return []
    behaviours = []
    for entry in when_true:
        if "Fn::If" in entry:
            name, entry, _ = entry["Fn::If"]
            if not evaluate({"Condition": name}, template, parameters):
                continue
        behaviours.append({**entry, "PathPattern": evaluate(entry["PathPattern"], template, parameters)})
    return behaviours


def parameters(
    patterns: list[str], origin: str = "streams.fleet.example.com", cloudfront: bool = True
) -> dict[str, Any]:
    cert = "arn:aws:acm:us-east-1:123456789012:certificate/abc" if cloudfront else ""
    return {
        "StreamPathPatterns": patterns,
        "StreamOriginDomain": origin,
        "PreviewCertificateArn": cert,
        "CloudFrontCertificateArn": cert,
    }


def test_the_default_stream_path_is_novncs_websockify(template: Template) -> None:
    declared = template["Parameters"]["StreamPathPatterns"]
    assert declared["Type"] == "CommaDelimitedList"
    assert declared["Default"] == "/websockify*"
    assert template["Parameters"]["StreamOriginDomain"]["Default"] == ""


@pytest.mark.parametrize(
    "patterns", [["/websockify*"], ["/websockify*", "/_next/webpack-hmr*"], ["/websockify*", "/ws*", "/hmr*"]]
)
def test_one_behaviour_per_stream_path_pattern(template: Template, patterns: list[str]) -> None:
    behaviours = stream_behaviours(template, parameters(patterns))

    assert [b["PathPattern"] for b in behaviours] == patterns


@pytest.mark.parametrize(
    "given", [parameters(["/websockify*"], origin=""), parameters(["/websockify*"], cloudfront=False)]
)
def test_no_stream_behaviour_without_a_stream_origin_or_cloudfront(
    template: Template, given: dict[str, Any]
) -> None:
    assert stream_behaviours(template, given) == []
    assert template["Resources"]["PreviewStreamVerifier"]["Condition"] == "HasStreams"
    assert not evaluate({"Condition": "HasStreams"}, template, given)


def test_each_stream_behaviour_goes_uncached_to_the_stream_ingress_through_the_verifier(
    template: Template,
) -> None:
    config = distribution(template["Resources"])
    stream_origin = next(o["Fn::If"] for o in config["Origins"] if "Fn::If" in o)

    assert stream_origin[0] == "HasStreams"
    assert stream_origin[1]["DomainName"] == {"Ref": "StreamOriginDomain"}
    assert stream_origin[1]["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    for behaviour in stream_behaviours(template, parameters(["/a*", "/b*", "/c*"])):
        assert behaviour["TargetOriginId"] == stream_origin[1]["Id"]
        assert behaviour["ViewerProtocolPolicy"] == "https-only"
        assert behaviour["CachePolicyId"] == CACHING_DISABLED
        assert set(behaviour["AllowedMethods"]) == {"GET", "HEAD", "OPTIONS"}
        assert behaviour["OriginRequestPolicyId"] == {"Ref": "PreviewStreamOriginRequestPolicy"}
        assert behaviour["FunctionAssociations"] == [
            {
                "EventType": "viewer-request",
                "FunctionARN": {"Fn::GetAtt": ["PreviewStreamVerifier", "FunctionMetadata.FunctionARN"]},
            },
            {
                "EventType": "viewer-response",
                "FunctionARN": {"Fn::GetAtt": ["PreviewEdgeResponse", "FunctionMetadata.FunctionARN"]},
            },
        ]
    assert config["DefaultCacheBehavior"]["TargetOriginId"] == "preview-api", "everything else: API Gateway"


def test_the_verifier_is_a_runtime_2_function_reading_keys_from_the_edge_store(
    resources: Mapping[str, Any],
) -> None:
    function = resources["PreviewStreamVerifier"]["Properties"]
    store = resources["PreviewEdgeStore"]

    assert resources["PreviewStreamVerifier"]["Type"] == "AWS::CloudFront::Function"
    assert function["AutoPublish"] is True
    assert function["FunctionConfig"]["Runtime"] == "cloudfront-js-2.0"
    assert function["FunctionConfig"]["KeyValueStoreAssociations"] == [
        {"KeyValueStoreARN": {"Fn::GetAtt": ["PreviewEdgeStore", "Arn"]}}
    ]
    assert store["Type"] == "AWS::CloudFront::KeyValueStore"
    assert "ImportSource" not in store["Properties"], (
        "keys reach the store from the CLI, never CloudFormation"
    )
    code = function["FunctionCode"]["Fn::Sub"]
    assert "import cf from 'cloudfront'" in code
    assert "kvs.get('key.' + header.kid)" in code
    assert "createHmac('sha256'" in code


def test_the_verifier_code_has_no_substitution_but_the_input_path(resources: Mapping[str, Any]) -> None:
    code = resources["PreviewStreamVerifier"]["Properties"]["FunctionCode"]["Fn::Sub"]

    assert set(re.findall(r"\$\{([^}]*)\}", code)) == {"InputPathPrefix"}


def test_the_stream_ingress_gets_the_websocket_handshake_and_the_verified_headers_never_our_cookies(
    resources: Mapping[str, Any],
) -> None:
    policy = resources["PreviewStreamOriginRequestPolicy"]["Properties"]["OriginRequestPolicyConfig"]

    assert policy["HeadersConfig"]["HeaderBehavior"] == "whitelist"
    assert set(policy["HeadersConfig"]["Headers"]) >= WEBSOCKET_HEADERS | EDGE_HEADERS
    assert "Authorization" not in policy["HeadersConfig"]["Headers"]
    assert policy["CookiesConfig"]["CookieBehavior"] == "allExcept"
    assert set(policy["CookiesConfig"]["Cookies"]) == OUR_COOKIES
    assert policy["QueryStringsConfig"] == {"QueryStringBehavior": "all"}
