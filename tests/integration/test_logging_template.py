"""template.yaml's logs and edge protection (checkov's findings): what they record, and what never.

The APIs' access logs and CloudFront's log name each field they keep; none may hold the query
string (``?mt=``), a header (``Cookie``, ``Authorization``), ``$context.requestOverride`` or the
``?mt=`` authorizer's ``token``. Logs and tables are encrypted with the stack's data key, the
preview distribution sits behind a rate-limiting WAF, and the mint and exchange functions have
reserved concurrency.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from preview_local.cfn_template import PROJECT_ROOT

from tests.support.template import cloudformation, sam_template

# Every $context variable an access log may record: none of them carries a credential.
ALLOWED_CONTEXT = {
    "requestId",
    "requestTime",
    "identity.sourceIp",
    "domainName",
    "httpMethod",
    "path",
    "resourcePath",
    "status",
    "responseLength",
    "responseLatency",
    "integrationLatency",
    "error.responseType",
    "authorizer.status",
    "authorizer.reason",
    "authorizer.sandbox_id",
}
FORBIDDEN_IN_FORMAT = (
    "querystring",
    "query",
    "header",
    "cookie",
    "authorization",
    "requestoverride",
    "useragent",
)
# CloudFront's log fields that would record the ?mt= token, the session cookie or a page URL.
FORBIDDEN_CLOUDFRONT_FIELDS = {"cs-uri-query", "cs(Cookie)", "cs(Referer)", "cs(User-Agent)"}
CLOUDFRONT_FIELDS = {  # CloudFront "Standard logging reference: Log file fields"
    "date", "time", "x-edge-location", "sc-bytes", "c-ip", "cs-method", "cs(Host)", "cs-uri-stem",
    "sc-status", "cs(Referer)", "cs(User-Agent)", "cs-uri-query", "cs(Cookie)", "x-edge-result-type",
    "x-edge-request-id", "x-host-header", "cs-protocol", "cs-bytes", "time-taken", "x-forwarded-for",
    "ssl-protocol", "ssl-cipher", "x-edge-response-result-type", "cs-protocol-version", "fle-status",
    "fle-encrypted-fields", "c-port", "time-to-first-byte", "x-edge-detailed-result-type",
    "sc-content-type", "sc-content-len", "sc-range-start", "sc-range-end",
}  # fmt: skip


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    found: dict[str, Any] = cloudformation()["Resources"]
    return found


def stages_of(resources: dict[str, Any], api: str) -> list[dict[str, Any]]:
    """Every stage of the API (the preview API has a second, mTLS one when the option is on)."""
    stages: list[dict[str, Any]] = [
        resource["Properties"]
        for resource in resources.values()
        if resource["Type"] == "AWS::ApiGateway::Stage"
        and resource["Properties"]["RestApiId"] == {"Ref": api}
    ]
    assert stages
    return stages


def encrypted_with_data_key(resource: dict[str, Any]) -> bool:
    return bool(resource["Properties"]["KmsKeyId"] == {"Fn::GetAtt": ["DataAtRestKey", "Arn"]})


@pytest.mark.parametrize(
    ("api", "log_group"), [("ControlPlaneApi", "ControlPlaneAccessLogs"), ("PreviewApi", "PreviewAccessLogs")]
)
def test_both_apis_write_access_logs_without_query_cookies_or_credentials(
    resources: dict[str, Any], api: str, log_group: str
) -> None:
    assert encrypted_with_data_key(resources[log_group])
    for stage in stages_of(resources, api):
        setting = stage["AccessLogSetting"]
        log_format = setting["Format"]
        variables = set(re.findall(r"\$context\.([A-Za-z_.]+)", log_format))

        assert setting["DestinationArn"] == {"Fn::GetAtt": [log_group, "Arn"]}
        assert variables <= ALLOWED_CONTEXT, variables - ALLOWED_CONTEXT
        assert not [word for word in FORBIDDEN_IN_FORMAT if word in log_format.lower()]
        assert "origin_cookie" not in log_format
        assert "origin_assertion" not in log_format
        record = json.loads(re.sub(r"\$context\.[A-Za-z_.]+", "x", log_format))  # one JSON object per line
        assert record["requestId"] == "x"


def test_api_gateway_may_write_logs_through_the_accounts_role(resources: dict[str, Any]) -> None:
    account = resources["ApiGatewayAccount"]
    role = resources["ApiGatewayCloudWatchRole"]["Properties"]
    assert account["Properties"]["CloudWatchRoleArn"] == {"Fn::GetAtt": ["ApiGatewayCloudWatchRole", "Arn"]}
    assert account["DeletionPolicy"] == "Retain"  # an account-wide setting other APIs may rely on
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "apigateway.amazonaws.com"
    }
    for api in ("ControlPlaneApi", "PreviewApi"):
        assert "ApiGatewayAccount" in sam_template()["Resources"][api]["DependsOn"]


def test_cloudfront_logs_without_the_query_cookies_referrer_or_user_agent(resources: dict[str, Any]) -> None:
    distribution = resources["PreviewDistribution"]["Properties"]["DistributionConfig"]
    delivery = resources["PreviewDistributionLogDelivery"]["Properties"]
    source = resources["PreviewDistributionLogSource"]["Properties"]
    destination = resources["PreviewDistributionLogDestination"]["Properties"]
    fields = set(delivery["RecordFields"])

    assert "Logging" not in distribution, "legacy standard logging always records the query string"
    assert fields <= CLOUDFRONT_FIELDS, fields - CLOUDFRONT_FIELDS
    assert not fields & FORBIDDEN_CLOUDFRONT_FIELDS
    assert {"date", "time", "c-ip", "cs-method", "x-host-header", "cs-uri-stem", "sc-status"} <= fields
    assert "${PreviewDistribution}" in source["ResourceArn"]["Fn::Sub"]
    assert delivery["DeliverySourceName"] == {"Ref": "PreviewDistributionLogSource"}
    assert destination["DestinationResourceArn"] == {"Fn::GetAtt": ["PreviewDistributionLogs", "Arn"]}
    assert encrypted_with_data_key(resources["PreviewDistributionLogs"])


def test_the_preview_distribution_is_behind_a_waf_that_rate_limits_each_client(
    resources: dict[str, Any],
) -> None:
    distribution = resources["PreviewDistribution"]["Properties"]["DistributionConfig"]
    acl = resources["PreviewWebAcl"]["Properties"]
    (rate,) = [rule for rule in acl["Rules"] if "RateBasedStatement" in rule["Statement"]]

    # in us-east-1 its own web ACL; elsewhere the one named by PreviewWebAclArn (made in us-east-1)
    assert distribution["WebACLId"] == {
        "Fn::If": [
            "CloudFrontProtectionsHere",
            {"Fn::GetAtt": ["PreviewWebAcl", "Arn"]},
            {"Fn::If": ["HasPreviewWebAclArn", {"Ref": "PreviewWebAclArn"}, {"Ref": "AWS::NoValue"}]},
        ]
    }
    assert resources["PreviewWebAcl"]["Condition"] == "CloudFrontProtectionsHere"
    assert acl["Scope"] == "CLOUDFRONT"
    assert rate["Statement"]["RateBasedStatement"]["AggregateKeyType"] == "IP"
    assert rate["Statement"]["RateBasedStatement"]["Limit"] == {"Ref": "PreviewRateLimit"}
    assert "Block" in rate["Action"]
    assert acl["VisibilityConfig"]["SampledRequestsEnabled"] is False  # samples keep the query (?mt=)
    assert all(rule["VisibilityConfig"]["SampledRequestsEnabled"] is False for rule in acl["Rules"])


def test_the_cloudfront_protections_exist_where_aws_allows_them_and_the_stack_deploys_anywhere(
    resources: dict[str, Any],
) -> None:
    conditions = sam_template()["Conditions"]
    rules = sam_template().get("Rules", {})
    assert "AWS::Region" not in json.dumps(rules)  # no region is imposed on the stack
    assert conditions["CloudFrontProtectionsHere"] == {
        "Fn::And": [{"Condition": "HasCloudFront"}, {"Fn::Equals": [{"Ref": "AWS::Region"}, "us-east-1"]}]
    }
    for name in (
        "PreviewWebAcl",
        "PreviewDistributionLogs",
        "PreviewDistributionLogSource",
        "PreviewDistributionLogDestination",
        "PreviewDistributionLogDelivery",
    ):
        assert resources[name]["Condition"] == "CloudFrontProtectionsHere", name


def test_every_table_is_encrypted_with_the_stacks_data_key_which_only_dynamodb_and_logs_may_use(
    resources: dict[str, Any],
) -> None:
    tables = [resource for resource in resources.values() if resource["Type"] == "AWS::DynamoDB::Table"]
    statements = {s["Sid"]: s for s in resources["DataAtRestKey"]["Properties"]["KeyPolicy"]["Statement"]}
    via_dynamodb = statements["TablesThroughDynamoDb"]["Condition"]["StringEquals"]

    assert len(tables) == 8
    for table in tables:
        assert table["Properties"]["SSESpecification"] == {
            "SSEEnabled": True,
            "SSEType": "KMS",
            "KMSMasterKeyId": {"Ref": "DataAtRestKey"},
        }
    assert via_dynamodb["kms:ViaService"] == {"Fn::Sub": "dynamodb.${AWS::Region}.amazonaws.com"}
    assert via_dynamodb["kms:CallerAccount"] == {"Ref": "AWS::AccountId"}
    assert statements["LogGroupsOfThisAccount"]["Principal"] == {
        "Service": {"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}
    }
    assert resources["DataAtRestKey"]["Properties"]["EnableKeyRotation"] is True


def test_mint_and_exchange_have_reserved_concurrency_and_the_authorizer_is_not_capped(
    resources: dict[str, Any],
) -> None:
    assert resources["MintFunction"]["Properties"]["ReservedConcurrentExecutions"] == {
        "Ref": "MintReservedConcurrency"
    }
    assert resources["ExchangeFunction"]["Properties"]["ReservedConcurrentExecutions"] == {
        "Ref": "ExchangeReservedConcurrency"
    }
    assert "ReservedConcurrentExecutions" not in resources["PreviewAuthorizerFunction"]["Properties"]


def test_every_checkov_skip_in_the_template_says_why() -> None:
    text = (PROJECT_ROOT / "template.yaml").read_text(encoding="utf-8")
    skips = re.findall(r"checkov:skip=([A-Z0-9_]+)(?::(.*))?", text)
    assert skips
    assert [check for check, reason in skips if len(reason.strip()) < 20] == []


def test_every_function_logs_to_a_log_group_of_the_stack_that_expires_and_is_encrypted(
    resources: dict[str, Any],
) -> None:
    """Not the /aws/lambda/... group Lambda would make on first use: never expiring, not encrypted
    with the stack's key, left behind by `sam delete`."""
    functions = {name: r for name, r in resources.items() if r["Type"] == "AWS::Lambda::Function"}
    assert functions
    for name, function in functions.items():
        group = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        log_group = resources[group]
        assert log_group["Type"] == "AWS::Logs::LogGroup", name
        assert log_group["Properties"]["RetentionInDays"] == {"Ref": "AccessLogRetentionDays"}
        assert encrypted_with_data_key(log_group)
