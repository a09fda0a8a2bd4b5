"""The edge as template.yaml deploys it, from the SAM transform's CloudFormation output.

One viewer-request function, ``PreviewEdge``, on the distribution's only behaviour, picks the
origin of every request: the REST API (``preview-api``, the default) or the fleet ingress
(``fleet-ingress``, with the secret header from Secrets Manager, a VPC origin when the ingress sits
behind an internal load balancer). Nothing cached, every viewer header forwarded (Host included),
no viewer-response function. Its code is ``edge/preview_edge.js``, written in by ``make edge``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pytest

from tests.support.template import cloudformation, sam_template, substitute
from tools.build_edge import SOURCE, TEMPLATE, deployed, with_source

CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
CLOUDFRONT_FUNCTION_MAX_BYTES = 10 * 1024
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


def origin(resources: Mapping[str, Any], origin_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(o for o in distribution(resources)["Origins"] if o["Id"] == origin_id)
    return found


def test_the_template_carries_the_edge_source_without_its_comment_lines() -> None:
    template = TEMPLATE.read_text(encoding="utf-8")
    source = SOURCE.read_text(encoding="utf-8")

    assert with_source(template, source) == template, "run `make edge`"
    assert sam_template()["Resources"]["PreviewEdge"]["Properties"]["FunctionCode"] == {
        "Fn::Sub": deployed(source)
    }


def test_the_code_substitutes_only_the_input_path_prefix_which_has_a_max_length(template: Template) -> None:
    code = template["Resources"]["PreviewEdge"]["Properties"]["FunctionCode"]["Fn::Sub"]

    assert set(re.findall(r"\$\{([^}]*)\}", code)) == {"InputPathPrefix"}
    assert template["Parameters"]["InputPathPrefix"]["MaxLength"] == 128


def test_the_function_stays_under_cloudfronts_size_limit_with_parameters_at_their_max_length(
    template: Template,
) -> None:
    code = template["Resources"]["PreviewEdge"]["Properties"]["FunctionCode"]
    longest = {
        name: "/" + "a" * (int(template["Parameters"][name]["MaxLength"]) - 1)
        for name in re.findall(r"\$\{([^}]*)\}", code["Fn::Sub"])
    }

    assert len(substitute(code, longest).encode()) < CLOUDFRONT_FUNCTION_MAX_BYTES


def test_one_behaviour_runs_the_edge_function_uncached_with_every_viewer_header(
    resources: Mapping[str, Any],
) -> None:
    config = distribution(resources)
    behaviour = config["DefaultCacheBehavior"]

    assert "CacheBehaviors" not in config, "no path is routed by a cache behaviour: the function routes"
    assert behaviour["TargetOriginId"] == "preview-api"
    assert behaviour["CachePolicyId"] == CACHING_DISABLED
    policy = resources[behaviour["OriginRequestPolicyId"]["Ref"]]["Properties"]["OriginRequestPolicyConfig"]
    # AllViewer's, plus the viewer's scheme for the app's X-Forwarded-Proto
    assert policy["HeadersConfig"] == {
        "HeaderBehavior": "allViewerAndWhitelistCloudFront",
        "Headers": ["CloudFront-Forwarded-Proto"],
    }, "Host and the WebSocket handshake reach the ingress"
    assert policy["CookiesConfig"] == {"CookieBehavior": "all"}
    assert policy["QueryStringsConfig"] == {"QueryStringBehavior": "all"}
    assert set(behaviour["AllowedMethods"]) == {"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"}
    assert behaviour["FunctionAssociations"] == [
        {
            "EventType": "viewer-request",
            "FunctionARN": {"Fn::GetAtt": ["PreviewEdge", "FunctionMetadata.FunctionARN"]},
        }
    ], "no viewer-response function: CloudFront runs none on a status of 400 or more"


def test_the_edge_function_reads_the_store_and_is_created_after_it(resources: Mapping[str, Any]) -> None:
    edge = resources["PreviewEdge"]
    config = edge["Properties"]["FunctionConfig"]

    assert edge["Type"] == "AWS::CloudFront::Function"
    assert edge["Condition"] == "HasCloudFront"
    assert edge["Properties"]["AutoPublish"] is True
    assert config["Runtime"] == "cloudfront-js-2.0"
    assert config["KeyValueStoreAssociations"] == [
        {"KeyValueStoreARN": {"Fn::GetAtt": ["PreviewEdgeStore", "Arn"]}}
    ]
    assert "PreviewEdgeStore" in edge["DependsOn"]
    assert "ImportSource" not in resources["PreviewEdgeStore"]["Properties"], "keys come from the CLI only"


def test_the_retired_edge_pieces_are_gone(template: Template) -> None:
    assert not {"PreviewEdgeRouter", "PreviewEdgeResponse", "PreviewStreamVerifier"} & set(
        template["Resources"]
    )
    assert not {"StreamPathPatterns", "StreamOriginDomain"} & set(template["Parameters"])


def test_the_ingress_origin_gets_the_secret_header_from_secrets_manager(resources: Mapping[str, Any]) -> None:
    ingress = origin(resources, "fleet-ingress")

    assert ingress["DomainName"] == {"Ref": "IngressOriginDomain"}
    (header,) = ingress["OriginCustomHeaders"]
    assert header["HeaderName"] == "X-Preview-Ingress-Secret"
    # CloudFormation re-reads a secret only when the resource changes: a rotation names the new version
    condition, versioned, current = header["HeaderValue"]["Fn::If"]
    assert condition == "HasIngressSecretVersion"
    assert versioned == {
        "Fn::Sub": "{{resolve:secretsmanager:${IngressOriginSecretId}:SecretString:::"
        "${IngressOriginSecretVersionId}}}"
    }
    assert current == {"Fn::Sub": "{{resolve:secretsmanager:${IngressOriginSecretId}:SecretString}}"}
    condition, vpc, public = ingress["CustomOriginConfig"]["Fn::If"]
    assert condition == "UseIngressVpcOrigin"
    assert vpc == {"Ref": "AWS::NoValue"}
    assert public["OriginProtocolPolicy"] == "https-only"
    condition, vpc, public = ingress["VpcOriginConfig"]["Fn::If"]
    assert vpc["VpcOriginId"] == {"Fn::GetAtt": ["PreviewIngressVpcOrigin", "Id"]}
    assert public == {"Ref": "AWS::NoValue"}


def test_a_load_balancer_arn_makes_the_ingress_a_vpc_origin(template: Template) -> None:
    vpc_origin = template["Resources"]["PreviewIngressVpcOrigin"]
    endpoint = vpc_origin["Properties"]["VpcOriginEndpointConfig"]

    assert vpc_origin["Condition"] == "UseIngressVpcOrigin"
    assert endpoint["Arn"] == {"Ref": "IngressLoadBalancerArn"}
    assert endpoint["OriginProtocolPolicy"] == "https-only"
    assert template["Parameters"]["IngressLoadBalancerArn"]["Default"] == ""


def test_cloudfront_without_an_ingress_domain_is_refused_at_deploy_time() -> None:
    rule = sam_template()["Rules"]["IngressOriginForCloudFront"]

    assert rule["RuleCondition"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "CloudFrontCertificateArn"}, ""]}]}
    assert rule["Assertions"][0]["Assert"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "IngressOriginDomain"}, ""]}]
    }


def test_one_certificate_without_the_other_is_refused_at_deploy_time() -> None:
    """CloudFront exists only with both (HasCloudFront): one alone would deploy no preview, silently."""
    rule = sam_template()["Rules"]["BothCertificatesOrNeither"]

    preview_unset = {"Fn::Equals": [{"Ref": "PreviewCertificateArn"}, ""]}
    cloudfront_unset = {"Fn::Equals": [{"Ref": "CloudFrontCertificateArn"}, ""]}
    assert rule["Assertions"][0]["Assert"] == {
        "Fn::Or": [
            {"Fn::And": [preview_unset, cloudfront_unset]},
            {"Fn::And": [{"Fn::Not": [preview_unset]}, {"Fn::Not": [cloudfront_unset]}]},
        ]
    }


def test_the_deployed_function_imports_the_cloudfront_module_on_its_first_line(template: Template) -> None:
    """AWS: "include the following statement in the first line of the function code" (origin modification)."""
    code = template["Resources"]["PreviewEdge"]["Properties"]["FunctionCode"]["Fn::Sub"]

    assert code.splitlines()[0] == "import cf from 'cloudfront';"
