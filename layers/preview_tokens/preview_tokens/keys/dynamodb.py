"""The boto3 DynamoDB client, created lazily once, and the error boundary for its failures."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from preview_tokens.errors import ServiceUnavailableError
from preview_tokens.keys.aws_timeouts import CONNECT_TIMEOUT_SECONDS, MAX_ATTEMPTS, READ_TIMEOUT_SECONDS
from preview_tokens.observability import logger

if TYPE_CHECKING:
    from botocore.config import Config
    from mypy_boto3_dynamodb import DynamoDBClient


def bounded_config() -> Config:
    """Timeouts and a retry budget that fail a stalled call long before the function times out."""
    from botocore.config import Config

    return Config(
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
    )


@cache
def default_client() -> DynamoDBClient:
    # Imported on first use: the mint's hot path goes through ``aws_json`` and never needs boto3,
    # whose import alone is the mint's whole cold-start budget (README "Performance").
    import boto3

    return boto3.client("dynamodb", config=bounded_config())


class DynamoDbRepository:
    """A repository of one table; its client is passed in, or the shared default made on first use."""

    def __init__(self, table: str, client: DynamoDBClient | None = None) -> None:
        self._table = table
        self._client = client

    @property
    def client(self) -> DynamoDBClient:
        self._client = self._client or default_client()
        return self._client


@contextmanager
def dependency_call(operation: str) -> Iterator[None]:
    """Turn a DynamoDB failure into :class:`ServiceUnavailableError` (503, retry later)."""
    with dependency_call_keeping((), operation):
        yield


@contextmanager
def dependency_call_keeping(codes: tuple[str, ...], operation: str) -> Iterator[None]:
    """As :func:`dependency_call`, but errors with one of ``codes`` reach the caller unchanged
    (a transaction's cancellation, whose reasons say what to answer)."""
    try:
        yield
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "Unknown")
        if code in codes:
            raise
        logger.warning("dynamodb call failed", extra={"operation": operation, "error_code": code})
        raise ServiceUnavailableError() from None
    except BotoCoreError as error:
        logger.warning(
            "dynamodb unreachable", extra={"operation": operation, "error_type": type(error).__name__}
        )
        raise ServiceUnavailableError() from None
