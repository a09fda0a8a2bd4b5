"""The boto3 DynamoDB client, created lazily once, and the error boundary for its failures."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from preview_tokens.aws_timeouts import CONNECT_TIMEOUT_SECONDS, MAX_ATTEMPTS, READ_TIMEOUT_SECONDS
from preview_tokens.errors import ServiceUnavailableError
from preview_tokens.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def bounded_config() -> Config:
    """Timeouts and a retry budget that fail a stalled call long before the function times out."""
    return Config(
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
    )


@cache
def default_client() -> DynamoDBClient:
    return boto3.client("dynamodb", config=bounded_config())


@contextmanager
def dependency_call(operation: str) -> Iterator[None]:
    """Turn a DynamoDB failure into :class:`ServiceUnavailableError` (503, retry later)."""
    try:
        yield
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "Unknown")
        logger.warning("dynamodb call failed", extra={"operation": operation, "error_code": code})
        raise ServiceUnavailableError() from None
    except BotoCoreError as error:
        logger.warning(
            "dynamodb unreachable", extra={"operation": operation, "error_type": type(error).__name__}
        )
        raise ServiceUnavailableError() from None
