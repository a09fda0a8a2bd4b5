"""Alarms, dashboard and runtime as template.yaml deploys them (the samtranslator output).

Every alarm watches the metric its runbook is about, with its threshold, and notifies the
AlarmTopicArn topic; each description links a runbook heading that exists in docs/runbooks.md.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from preview_tokens import observability

from tests.support.template import cloudformation, sam_template

ROOT = Path(__file__).resolve().parents[2]
TOPIC = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
SERVICE = {"Name": "service", "Value": "preview-tokens"}


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    found: dict[str, Any] = cloudformation()["Resources"]
    return found


def alarms(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: resource["Properties"]
        for name, resource in resources.items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }


def watched(alarm: dict[str, Any]) -> tuple[Any, ...]:
    """(namespace, metric, dimensions, statistic, threshold, comparison) of a single-metric alarm."""
    return (
        alarm["Namespace"],
        alarm["MetricName"],
        alarm["Dimensions"],
        alarm["Statistic"],
        alarm["Threshold"],
        alarm["ComparisonOperator"],
    )


def runbook_anchors() -> set[str]:
    text = (ROOT / "docs" / "runbooks.md").read_text()
    headings = re.findall(r"^#{2,4} (.+)$", text, re.M)
    return {re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_every_alarm_notifies_the_topic_and_links_a_runbook_that_exists(resources: dict[str, Any]) -> None:
    found = alarms(resources)
    anchors = runbook_anchors()

    assert len(found) >= 12
    for name, alarm in found.items():
        assert alarm["AlarmActions"] == TOPIC, name
        assert alarm["OKActions"] == TOPIC, name
        assert alarm["TreatMissingData"] == "notBreaching", name
        description = alarm["AlarmDescription"]["Fn::Sub"]
        runbook = re.search(r"Runbook: \$\{RunbookBaseUrl\}#([a-z0-9-]+)$", description)
        assert runbook, name
        assert runbook.group(1) in anchors, (name, runbook.group(1))
        assert len(description) < 1024 - 400  # room for RunbookBaseUrl at its MaxLength


def test_the_mint_5xx_rate_alarm_watches_the_control_plane_apis_stage(resources: dict[str, Any]) -> None:
    assert watched(alarms(resources)["MintServerErrorRateAlarm"]) == (
        "AWS/ApiGateway",
        "5XXError",
        [{"Name": "ApiName", "Value": {"Ref": "AWS::StackName"}}, {"Name": "Stage", "Value": "v1"}],
        "Average",
        0.05,
        "GreaterThanThreshold",
    )
    # the REST API's name is the stack's (SAM's generated definition), which the dimension names
    assert resources["ControlPlaneApi"]["Properties"]["Body"]["info"]["title"] == {"Ref": "AWS::StackName"}
    assert resources["ControlPlaneApiv1Stage"]["Properties"]["StageName"] == "v1"


def test_every_lambda_function_has_an_errors_and_a_throttles_alarm(resources: dict[str, Any]) -> None:
    functions = {name for name, r in resources.items() if r["Type"] == "AWS::Lambda::Function"}
    by_function: dict[str, set[str]] = {}
    for alarm in alarms(resources).values():
        if alarm.get("Namespace") == "AWS/Lambda":
            assert alarm["Statistic"] == "Sum"
            assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
            [dimension] = alarm["Dimensions"]
            assert dimension["Name"] == "FunctionName"
            by_function.setdefault(dimension["Value"]["Ref"], set()).add(alarm["MetricName"])

    assert functions
    assert by_function == {name: {"Errors", "Throttles"} for name in functions}


def test_previews_unavailable_alarms_on_the_unavailable_denials(resources: dict[str, Any]) -> None:
    alarm = alarms(resources)["PreviewsUnavailableAlarm"]
    assert watched(alarm) == (
        observability.NAMESPACE,
        observability.DENIALS,
        [{"Name": "Reason", "Value": "unavailable"}, SERVICE],
        "Sum",
        10,
        "GreaterThanOrEqualToThreshold",
    )
    assert (alarm["Period"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (60, 3, 3)


def test_key_refresh_failures_alarm(resources: dict[str, Any]) -> None:
    assert watched(alarms(resources)["KeyRefreshFailuresAlarm"]) == (
        observability.NAMESPACE,
        observability.KEY_REFRESH_FAILURES,
        [SERVICE],
        "Sum",
        0,
        "GreaterThanThreshold",
    )


def test_the_cloudfront_5xx_rate_alarm_exists_where_cloudfronts_metrics_are(
    resources: dict[str, Any],
) -> None:
    assert resources["CloudFrontServerErrorRateAlarm"]["Condition"] == "CloudFrontProtectionsHere"
    assert resources["PreviewDistribution"]["Condition"] == "HasCloudFront"
    assert watched(alarms(resources)["CloudFrontServerErrorRateAlarm"]) == (
        "AWS/CloudFront",
        "5xxErrorRate",
        [
            {"Name": "DistributionId", "Value": {"Ref": "PreviewDistribution"}},
            {"Name": "Region", "Value": "Global"},
        ],
        "Average",
        5,
        "GreaterThanThreshold",
    )


def test_every_table_is_in_a_dynamodb_throttling_alarm(resources: dict[str, Any]) -> None:
    tables = {name for name, r in resources.items() if r["Type"] == "AWS::DynamoDB::Table"}
    watched_tables: set[str] = set()
    for name, alarm in alarms(resources).items():
        if not name.startswith("DynamoDbThrottles"):
            continue
        [expression] = [m for m in alarm["Metrics"] if "Expression" in m]
        stats = {m["Id"]: m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m}
        assert expression["ReturnData"] is True
        assert set(re.findall(r"[rw]\d+", expression["Expression"])) == set(stats)
        assert len(alarm["Metrics"]) <= 10 + 1  # CloudWatch: at most 10 metrics in an alarm's math
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
        for stat in stats.values():
            metric = stat["Metric"]
            assert metric["Namespace"] == "AWS/DynamoDB"
            assert metric["MetricName"] in {"ReadThrottleEvents", "WriteThrottleEvents"}
            assert stat["Stat"] == "Sum"
            watched_tables.add(metric["Dimensions"][0]["Value"]["Ref"])

    assert tables
    assert watched_tables == tables


def dashboard_body(resources: dict[str, Any], with_cloudfront: bool) -> dict[str, Any]:
    """The body as CloudFormation would render it, every ``${...}`` left as its name."""
    parts = resources["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Join"][1]
    head, cloudfront, tail = parts
    condition, present, absent = cloudfront["Fn::If"]
    assert condition == "CloudFrontProtectionsHere"
    text = head["Fn::Sub"] + (present["Fn::Sub"] if with_cloudfront else absent) + tail
    body: dict[str, Any] = json.loads(text)
    return body


@pytest.mark.parametrize("with_cloudfront", [True, False])
def test_the_dashboard_shows_every_metric_and_alarm(resources: dict[str, Any], with_cloudfront: bool) -> None:
    body = dashboard_body(resources, with_cloudfront)
    text = json.dumps(body)

    for name in (
        observability.TOKENS_MINTED,
        observability.MINT_REFUSALS,
        observability.MINTS_RATE_LIMITED,
        observability.EXCHANGES,
        observability.DENIALS,
        observability.REVOCATIONS,
        observability.KEY_REFRESH_FAILURES,
        observability.REVOCATION_VIEW_STALENESS,
    ):
        assert f'\\"{name}\\"' in text or f'"{name}"' in text, name
    [alarm_widget] = [w for w in body["widgets"] if w["type"] == "alarm"]
    unconditional = {
        n for n, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm" and "Condition" not in r
    }
    assert set(alarm_widget["properties"]["alarms"]) == {f"${{{name}.Arn}}" for name in unconditional}
    assert ("5xxErrorRate" in text) is with_cloudfront
    assert any("${MintFunction}" in json.dumps(w) for w in body["widgets"])


def test_the_dashboards_url_is_an_output() -> None:
    output = cloudformation()["Outputs"]["OperationsDashboardUrl"]["Value"]["Fn::Sub"]
    assert "#dashboards/dashboard/${OperationsDashboard}" in output


def test_the_alarm_topic_is_a_parameter_and_may_be_left_empty() -> None:
    parameters = sam_template()["Parameters"]
    assert parameters["AlarmTopicArn"]["Default"] == ""
    pattern = re.compile(parameters["AlarmTopicArn"]["AllowedPattern"])
    assert pattern.fullmatch("arn:aws:sns:eu-west-1:123456789012:preview-alarms")
    assert pattern.fullmatch("")
    assert not pattern.fullmatch("preview-alarms")


def test_the_lambda_runtime_is_one_value() -> None:
    """One ``python3.x`` in template.yaml: the layer names it through a YAML anchor."""
    text = (ROOT / "template.yaml").read_text()
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    assert re.findall(r"python3\.\d+", code) == ["python3.11"]
    resources = cloudformation()["Resources"]
    runtimes = {
        r["Properties"]["Runtime"] for r in resources.values() if r["Type"] == "AWS::Lambda::Function"
    }
    layer = sam_template()["Resources"]["PreviewTokensLayer"]
    assert runtimes == set(layer["Properties"]["CompatibleRuntimes"]) == {layer["Metadata"]["BuildMethod"]}


def test_a_stale_revocation_view_alarms_at_the_staleness_the_stack_allows(resources: dict[str, Any]) -> None:
    alarm = alarms(resources)["RevocationViewStaleAlarm"]
    assert watched(alarm) == (
        observability.NAMESPACE,
        observability.REVOCATION_VIEW_STALENESS,
        [SERVICE],
        "Maximum",
        {"Ref": "RevocationsMaxStalenessSeconds"},
        "GreaterThanOrEqualToThreshold",
    )
