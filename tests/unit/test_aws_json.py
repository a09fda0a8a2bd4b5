"""Our SigV4 signer produces exactly botocore's signature for the same request."""

from __future__ import annotations

from datetime import UTC, datetime
from unittest import mock

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from preview_tokens.keys.aws_json import AwsCredentials, AwsJsonClient, AwsServiceError, sigv4_headers

WHEN = datetime(2026, 11, 28, 4, 30, 0, tzinfo=UTC)


@pytest.mark.parametrize("session_token", [None, "session-token-value"])
def test_signature_matches_botocore(session_token: str | None) -> None:
    body = b'{"TableName": "keys", "KeyConditionExpression": "key_set = :k"}'
    headers = {"content-type": "application/x-amz-json-1.0", "x-amz-target": "DynamoDB_20120810.Query"}
    ours = sigv4_headers(
        credentials=AwsCredentials("AKIDEXAMPLE", "secret/key+value", session_token),
        region="eu-west-1",
        service="dynamodb",
        host="dynamodb.eu-west-1.amazonaws.com",
        body=body,
        headers=headers,
        now=WHEN,
    )

    request = AWSRequest(
        method="POST", url="https://dynamodb.eu-west-1.amazonaws.com/", data=body, headers=dict(headers)
    )
    with mock.patch("botocore.auth.get_current_datetime", return_value=WHEN.replace(tzinfo=None)):
        SigV4Auth(
            Credentials("AKIDEXAMPLE", "secret/key+value", session_token), "dynamodb", "eu-west-1"
        ).add_auth(request)

    assert ours["authorization"] == request.headers["Authorization"]
    assert ours["x-amz-date"] == request.headers["X-Amz-Date"]


def test_endpoints_follow_the_same_environment_variables_as_boto3() -> None:
    env = {
        "AWS_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
        "AWS_ENDPOINT_URL_KMS": "http://127.0.0.1:6000",
    }
    assert AwsJsonClient("kms", env=env)._netloc == "127.0.0.1:6000"
    assert AwsJsonClient("dynamodb", env=env)._netloc == "127.0.0.1:5000"
    assert AwsJsonClient("kms", env={"AWS_REGION": "eu-west-1"})._netloc == "kms.eu-west-1.amazonaws.com"


def test_missing_credentials_fail_as_a_service_error_without_a_network_call() -> None:
    with pytest.raises(AwsServiceError) as raised:
        AwsJsonClient("kms", env={"AWS_REGION": "eu-west-1"}).call("Decrypt", {})
    assert raised.value.code == "NoCredentials"
