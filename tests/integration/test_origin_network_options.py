"""The network-level options between API Gateway and the fleet, as template.yaml deploys them.

Beside the origin assertion, two parameterised options keep the fleet's ingress out of reach:
a client certificate API Gateway presents (mutual TLS), and a private integration through a
VPC link V2 to an internal load balancer. Both are off by default. Checked on the SAM
translation and on the template resolved with parameters, as CloudFormation would resolve it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from preview_local.deployment import LocalDeployment, LocalDeploymentError, deploy_locally

from tests.support.template import cloudformation, placeholder_physical_ids

SANDBOX_ROUTES = ("/", "/{proxy+}")
ALB_ARN = (
    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/sandbox-fleet/0123456789abcdef"
)
PHYSICAL_IDS = placeholder_physical_ids(PreviewOriginVpcLink="vl-0abc123")


def deployed(**parameters: str) -> LocalDeployment:
    return deploy_locally(
        {"SandboxOriginUrl": "https://ingress.sandboxes.internal.example.com", **parameters}, PHYSICAL_IDS
    )


def sandbox_integrations(deployment: LocalDeployment) -> list[Mapping[str, Any]]:
    paths = deployment.rest_apis["PreviewApi"].definition["paths"]
    return [
        paths[path]["x-amazon-apigateway-any-method"]["x-amazon-apigateway-integration"]
        for path in SANDBOX_ROUTES
    ]


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    found: dict[str, Any] = cloudformation()["Resources"]
    return found


# -------------------------------------------------------------------------- the defaults
def test_by_default_the_origin_is_reached_over_the_internet_from_the_preview_stage() -> None:
    deployment = deployed()

    for integration in sandbox_integrations(deployment):
        assert integration["connectionType"] == "INTERNET"
        assert "connectionId" not in integration
        assert "integrationTarget" not in integration
    assert deployment.rest_apis["PreviewApi"].stage == "preview"


def test_the_options_create_nothing_unless_asked(resources: Mapping[str, Any]) -> None:
    assert resources["PreviewOriginClientCertificate"]["Condition"] == "UseOriginClientCertificate"
    assert resources["PreviewMtlsStage"]["Condition"] == "UseOriginClientCertificate"
    assert resources["PreviewOriginVpcLink"]["Condition"] == "UsePrivateOrigin"
    parameters = cloudformation()["Parameters"]
    assert parameters["OriginClientCertificate"]["Default"] == "Disabled"
    assert parameters["OriginLoadBalancerArn"]["Default"] == ""


# --------------------------------------------------------------------------- mutual TLS
def test_with_a_client_certificate_the_custom_domain_serves_the_stage_that_presents_it(
    resources: Mapping[str, Any],
) -> None:
    stage = resources["PreviewMtlsStage"]["Properties"]
    sam_stage = resources["PreviewApipreviewStage"]["Properties"]

    assert stage["ClientCertificateId"] == {"Ref": "PreviewOriginClientCertificate"}
    assert stage["RestApiId"] == {"Ref": "PreviewApi"}
    assert stage["DeploymentId"] == sam_stage["DeploymentId"]  # the same routes, authorizer and mappings
    assert stage["TracingEnabled"] is True
    assert resources["PreviewBasePathMapping"]["Properties"]["Stage"] == {
        "Fn::If": [
            "UseOriginClientCertificate",
            {"Ref": "PreviewMtlsStage"},
            {"Ref": "PreviewApipreviewStage"},
        ]
    }
    assert deployed(OriginClientCertificate="Enabled").rest_apis["PreviewApi"].stage == "preview-mtls"


def test_the_certificate_is_an_output_for_the_fleets_trust_store() -> None:
    outputs = cloudformation()["Outputs"]

    assert outputs["OriginClientCertificateId"]["Condition"] == "UseOriginClientCertificate"
    assert outputs["OriginClientCertificateId"]["Value"] == {"Ref": "PreviewOriginClientCertificate"}
    assert "origin-keys" in str(outputs["OriginKeysUrl"]["Value"])


# ---------------------------------------------------------------------- private integration
def test_a_load_balancer_arn_makes_every_sandbox_route_a_private_integration(
    resources: Mapping[str, Any],
) -> None:
    deployment = deployed(OriginLoadBalancerArn=ALB_ARN)

    for integration in sandbox_integrations(deployment):
        assert integration["type"] == "http_proxy"
        assert integration["connectionType"] == "VPC_LINK"
        assert integration["connectionId"] == "vl-0abc123"
        assert integration["integrationTarget"] == ALB_ARN
        assert integration["uri"].startswith(
            "https://ingress.sandboxes.internal.example.com/"
        )  # Host and TLS name
        # the trust the origin gets is unchanged: the assertion and the stripped cookies
        assert integration["requestParameters"]["integration.request.header.X-Preview-Assertion"] == (
            "context.authorizer.origin_assertion"
        )
    link = resources["PreviewOriginVpcLink"]
    assert link["Type"] == "AWS::ApiGatewayV2::VpcLink"
    assert link["Properties"]["SubnetIds"] == {"Ref": "OriginVpcLinkSubnetIds"}
    assert link["Properties"]["SecurityGroupIds"] == {"Ref": "OriginVpcLinkSecurityGroupIds"}


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/fleet/0123456789abcdef",
        "https://internal-alb.example.com",
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/fleet",
    ],
)
def test_only_a_load_balancer_arn_is_accepted(arn: str) -> None:
    with pytest.raises(LocalDeploymentError, match="OriginLoadBalancerArn"):
        deployed(OriginLoadBalancerArn=arn)


def test_the_exchange_routes_stay_lambda_proxies_whatever_the_option() -> None:
    paths = deployed(OriginLoadBalancerArn=ALB_ARN).rest_apis["PreviewApi"].definition["paths"]

    for path in ("/__preview/exchange", "/__preview/exchange/{proxy+}"):
        integration = paths[path]["get"]["x-amazon-apigateway-integration"]
        assert integration["type"] == "aws_proxy"
        assert "connectionType" not in integration
