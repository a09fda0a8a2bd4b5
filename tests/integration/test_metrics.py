"""The metrics each handler writes, read from the EMF lines it prints (what CloudWatch ingests).

One namespace, ``PreviewTokens``; the only dimensions are enums (scope, error code, denial
reason, revocation kind): never a tenant or a sandbox id (docs/operations.md "Metrics").
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import boto3
import mint_api
import pytest
from preview_tokens import settings
from preview_tokens.observability import logger

from tests.integration.conftest import clear_cold_start_caches
from tests.support.deployment import OTHER_SANDBOX, SANDBOX, TENANT, Deployment
from tests.support.events import for_sandbox, lambda_context, load_event, set_header, with_body
from tests.support.exchange import exchange_handler
from tests.support.preview_tokens import change_char, token_for

NAMESPACE = "PreviewTokens"
CLOUDFRONT_ID = "q1Xw8Yk3m4v5Z6a7B8c9D0e1F2g3H4i5J6k7L8m9N0o1P2q3R4s5T6u=="


def emf_metrics(output: str) -> list[tuple[str, dict[str, str], float]]:
    """Every metric of every EMF line in ``output``: (name, dimensions but ``service``, value)."""
    found: list[tuple[str, dict[str, str], float]] = []
    for line in output.splitlines():
        if not line.startswith("{"):
            continue
        document: dict[str, Any] = json.loads(line)
        if "_aws" not in document:
            continue
        for directive in document["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == NAMESPACE
            names = [name for group in directive["Dimensions"] for name in group]
            dimensions = {name: document[name] for name in names}
            # every metric also has the constant service dimension (template.yaml's alarms name it)
            assert dimensions.pop("service") == "preview-tokens"
            for metric in directive["Metrics"]:
                value = document[metric["Name"]]
                for one in value if isinstance(value, list) else [value]:
                    found.append((metric["Name"], dimensions, float(one)))
    return found


def counts(output: str) -> list[tuple[str, dict[str, str]]]:
    return [
        (name, dimensions) for name, dimensions, _ in emf_metrics(output) if name != "RevocationViewStaleness"
    ]


def mint(event: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = mint_api.lambda_handler(event, lambda_context())
    return result


def test_a_mint_counts_the_token_by_scope(deployment: Deployment, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert mint(load_event("mint_read", credential=deployment.api_key))["statusCode"] == 200
    assert mint(load_event("mint_interact", credential=deployment.api_key))["statusCode"] == 200

    assert counts(capsys.readouterr().out) == [
        ("TokensMinted", {"Scope": "read"}),
        ("TokensMinted", {"Scope": "interact"}),
    ]


def test_each_refused_mint_counts_by_error_code(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    mint(load_event("mint_read", credential="msk_" + "Z" * 43))
    mint(load_event("mint_read", credential=deployment.api_key_without_scope))
    mint(with_body(load_event("mint_read", credential=deployment.api_key), '{"scope": "root"}'))
    mint(for_sandbox(load_event("mint_read", credential=deployment.api_key), OTHER_SANDBOX))

    assert counts(capsys.readouterr().out) == [
        ("MintRefusals", {"ErrorCode": "unauthorized"}),
        ("MintRefusals", {"ErrorCode": "forbidden"}),
        ("MintRefusals", {"ErrorCode": "invalid_scope"}),
        ("MintRefusals", {"ErrorCode": "sandbox_not_found"}),
    ]


def test_a_rate_limited_mint_is_a_refusal_and_a_rate_limited_mint(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment.tenants.set_mint_rate_limit(TENANT, 1)
    mint(load_event("mint_read", credential=deployment.api_key))
    capsys.readouterr()

    assert mint(load_event("mint_read", credential=deployment.api_key))["statusCode"] == 429

    assert counts(capsys.readouterr().out) == [
        ("MintRefusals", {"ErrorCode": "rate_limited"}),
        ("MintsRateLimited", {}),
    ]


def test_a_signing_key_store_that_cannot_be_read_counts_a_key_refresh_failure(
    deployment: Deployment, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNING_KEYS_TABLE", "no-such-table")
    clear_cold_start_caches()
    capsys.readouterr()

    assert mint(load_event("mint_read", credential=deployment.api_key))["statusCode"] == 503

    assert counts(capsys.readouterr().out) == [
        ("KeyRefreshFailures", {}),
        ("MintRefusals", {"ErrorCode": "unavailable"}),
    ]


def test_revocations_count_by_kind(deployment: Deployment, capsys: pytest.CaptureFixture[str]) -> None:
    token = token_for(deployment)
    capsys.readouterr()

    revoke = with_body(
        load_event("revoke_token", credential=deployment.api_key), json.dumps({"token": token})
    )
    assert mint(revoke)["statusCode"] == 200
    assert mint(load_event("revoke_sandbox_tokens", credential=deployment.api_key))["statusCode"] == 204

    assert counts(capsys.readouterr().out) == [
        ("Revocations", {"Kind": "token"}),
        ("Revocations", {"Kind": "sandbox"}),
    ]


def test_an_exchange_counts_and_reports_the_revocation_views_staleness(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    token = token_for(deployment)
    capsys.readouterr()

    response = exchange_handler(load_event("exchange_mt", token=token), lambda_context())

    assert response["statusCode"] == 302
    found = emf_metrics(capsys.readouterr().out)
    assert ("Exchanges", {}, 1.0) in found
    assert ("RevocationViewStaleness", {}, 0.0) in found  # refreshed just now


def test_a_denied_exchange_counts_by_reason(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    forged = change_char(token_for(deployment), 2)
    capsys.readouterr()

    response = exchange_handler(load_event("exchange_mt", token=forged), lambda_context())

    assert response["statusCode"] == 403
    assert counts(capsys.readouterr().out) == [("Denials", {"Reason": "invalid_token"})]


def test_an_exchange_the_signing_keys_cannot_verify_counts_the_refresh_failure_and_unavailable(
    deployment: Deployment, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ``?mt=`` authorizer cannot read the keys: a key refresh failure, then the exchange's
    "unavailable" page, counted by its reason (not as a refusal of the token)."""
    token = token_for(deployment)
    monkeypatch.setenv("SIGNING_KEYS_TABLE", "no-such-table")
    clear_cold_start_caches()
    capsys.readouterr()

    response = exchange_handler(load_event("exchange_mt", token=token), lambda_context())

    assert response["statusCode"] == 503
    assert counts(capsys.readouterr().out) == [
        ("KeyRefreshFailures", {}),
        ("Denials", {"Reason": "unavailable"}),
    ]


def test_no_metric_has_a_tenant_or_sandbox_dimension(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    mint(load_event("mint_read", credential=deployment.api_key))
    token = token_for(deployment)
    exchange_handler(load_event("exchange_mt", token=token), lambda_context())
    exchange_handler(load_event("exchange_mt", token=change_char(token, 2)), lambda_context())
    found = emf_metrics(capsys.readouterr().out)

    assert found
    for _name, dimensions, _value in found:
        assert set(dimensions) <= {"Scope", "ErrorCode", "Reason", "Kind"}
        assert SANDBOX not in dimensions.values()
        assert TENANT not in dimensions.values()


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """The functions' log lines, as Lambda would write them."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    yield buffer
    logger.handlers.remove(handler)


def test_the_exchange_logs_cloudfronts_request_id(deployment: Deployment, log_lines: io.StringIO) -> None:
    """One request followed end to end: CloudFront's X-Amz-Cf-Id is the log line's request_id."""
    token = token_for(deployment)
    for event in (
        load_event("exchange_mt", token=token),
        load_event("exchange_mt", token=change_char(token, 2)),
    ):
        exchange_handler(set_header(event, "X-Amz-Cf-Id", CLOUDFRONT_ID), lambda_context())
    exchange_handler(
        set_header(load_event("exchange_mt", token=token), "X-Amz-Cf-Id", "not\nan id"), lambda_context()
    )

    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    by_message = [(line["message"], line.get("request_id")) for line in lines]
    assert ("preview session started", CLOUDFRONT_ID) in by_message
    assert ("preview exchange denied", CLOUDFRONT_ID) in by_message
    # not an id CloudFront would send: API Gateway's own request id instead
    assert by_message[-1][1] not in (CLOUDFRONT_ID, "not\nan id")
    assert by_message[-1][1]


def test_metrics_are_off_where_the_local_stack_turns_them_off(
    deployment: Deployment, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    settings.mint_settings.cache_clear()
    capsys.readouterr()
    mint(load_event("mint_read", credential=deployment.api_key))
    assert emf_metrics(capsys.readouterr().out) == []


def test_while_the_revocation_feed_fails_the_staleness_grows(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    exchange_handler(load_event("exchange_mt", token=token_for(deployment)), lambda_context())
    boto3.client("dynamodb").delete_table(TableName=os.environ["REVOCATIONS_TABLE"])
    capsys.readouterr()

    response = exchange_handler(load_event("exchange_mt", token=token_for(deployment)), lambda_context())

    assert response["statusCode"] == 302  # within RevocationsMaxStalenessSeconds: still served
    found = emf_metrics(capsys.readouterr().out)
    [staleness] = [value for name, _, value in found if name == "RevocationViewStaleness"]
    assert staleness > 0


def test_the_denial_route_counts_by_reason_and_logs_cloudfronts_request_id(
    deployment: Deployment, capsys: pytest.CaptureFixture[str], log_lines: io.StringIO
) -> None:
    """A request PreviewEdge refused: its page, the Denials metric, and the log line under the id
    CloudFront gave the request (the same id as in the distribution's log and the ingress's)."""
    capsys.readouterr()
    event = load_event("exchange_denied", reason="expired", sandbox="")
    response = exchange_handler(set_header(event, "X-Amz-Cf-Id", CLOUDFRONT_ID), lambda_context())

    assert response["statusCode"] == 403
    assert counts(capsys.readouterr().out) == [("Denials", {"Reason": "expired"})]
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    assert [(line["message"], line["reason"], line["request_id"]) for line in lines] == [
        ("preview exchange denied", "expired", CLOUDFRONT_ID)
    ]
