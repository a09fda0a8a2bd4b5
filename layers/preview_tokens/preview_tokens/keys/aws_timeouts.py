"""How long one call to DynamoDB, KMS or the JWKS endpoint may take: far below the functions' timeout.

boto3's defaults (60 s to connect, 60 s per read, and retries: DynamoDB's legacy mode retries up to
10 times) let one stalled dependency hold a mint request for minutes, past the function's
``Timeout`` (10 s, template.yaml ``Globals``) and API Gateway's 29 s. With these bounds a call that
gets no answer fails within ``MAX_ATTEMPTS * (CONNECT + READ)`` plus one backoff (at most 7 s),
and the caller answers ``503 unavailable`` with ``Retry-After``. Standard library only: the
authorizer's client (:mod:`aws_json`) reads it too.
"""

from __future__ import annotations

CONNECT_TIMEOUT_SECONDS = 1.0
READ_TIMEOUT_SECONDS = 2.0
# boto3 (mint): attempts in all, the first one included; "standard" retry mode, whose first
# backoff is rand(0, 1) x 1 s at most (botocore.retries.standard.ExponentialBackoff, throttling).
# The data plane's own client does not retry: the key ring backs off instead.
MAX_ATTEMPTS = 2
MAX_RETRY_BACKOFF_SECONDS = 1.0


def worst_case_call_seconds(attempts: int = MAX_ATTEMPTS) -> float:
    """The longest one call can take before it fails, retries included."""
    return attempts * (CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS) + (attempts - 1) * (
        MAX_RETRY_BACKOFF_SECONDS
    )
