"""The logger and metrics of every function, created once here and imported everywhere.

Metrics are CloudWatch embedded metric format (EMF) lines, all in one namespace
(:data:`NAMESPACE`), each written by the helpers below at the moment the event happens
(``single_metric``: one JSON line per event, which CloudWatch aggregates). Their only dimensions
are low-cardinality enums (scope, error code, denial reason, revocation kind): never a tenant or
a sandbox id, which would make one metric per customer (docs/operations.md "Metrics").

Every log line passes :func:`redact_credentials` last, after formatting (message, extra keys,
exception text and traceback alike): what looks like a preview token, an API key, a JWT or a
Bearer value is replaced by ``[redacted]`` whatever put it there. Powertools writes JSON, so
control characters in a field are escaped by the encoder.

No X-Ray tracer: creating Powertools' Tracer loads the X-Ray SDK (0.2-0.5 s and ~50 MB), which
alone broke the mint's cold-start budget (README "Performance"). The functions keep
``Tracing: Active``: Lambda and API Gateway still record each invocation's segment (init,
duration, errors) without the SDK; only per-call subsegments are gone, and a warm mint makes
two DynamoDB calls whose latency its log line states.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Mapping

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

SERVICE = "preview-tokens"
NAMESPACE = "PreviewTokens"
REDACTED = "[redacted]"
# A preview token or an API key (mp_/msk_ and what follows), a JWT or bare JWS part (base64url
# JSON starts with eyJ), a Bearer value. Runs stop at quotes and backslashes, so JSON stays JSON.
CREDENTIAL_SHAPED = re.compile(
    r"(?:mp_|msk_)[^\s/?&;,\"'\\]*|eyJ[A-Za-z0-9_=-]*(?:\.[A-Za-z0-9_=-]*)*|(?i:bearer)\s+[^\s\"'\\]+"
)


def redact_credentials(text: str) -> str:
    return CREDENTIAL_SHAPED.sub(REDACTED, text)


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON lines, with anything credential-shaped redacted."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_credentials(super().format(record))


logger = Logger(service=SERVICE, logger_formatter=RedactingFormatter())
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
# A request that publishes no metric (the lifecycle routes, the OpenAPI document) is expected, but
# Powertools then warns once per process, a line that is not JSON in the function's log. Silenced
# as the Powertools metrics docs show ("Raising SchemaValidationError on empty metrics").
warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning)

# The metrics, by name (template.yaml's alarms and dashboard name the same ones).
TOKENS_MINTED = "TokensMinted"  # dimension Scope
MINT_REFUSALS = "MintRefusals"  # dimension ErrorCode
MINTS_RATE_LIMITED = "MintsRateLimited"
EXCHANGES = "Exchanges"
DENIALS = "Denials"  # dimension Reason
REVOCATIONS = "Revocations"  # dimension Kind
KEY_REFRESH_FAILURES = "KeyRefreshFailures"
REVOCATION_VIEW_STALENESS = "RevocationViewStaleness"  # seconds since the view last refreshed
RENEWAL_LINKS = "RenewalLinks"  # dimension Outcome: recorded, not_recorded


def _emit(name: str, unit: MetricUnit, value: float, dimension: tuple[str, str] | None) -> None:
    if is_metrics_disabled():  # POWERTOOLS_METRICS_DISABLED (the local stack), which single_metric ignores
        return
    try:
        with single_metric(name=name, unit=unit, value=value, namespace=NAMESPACE) as metric:
            if dimension is not None:
                metric.add_dimension(name=dimension[0], value=dimension[1])
    except Exception as error:  # a metric never fails a request
        logger.warning("metric not written", extra={"metric": name, "error_type": type(error).__name__})


def count(name: str, dimension: tuple[str, str] | None = None) -> None:
    """One occurrence of ``name`` (optionally broken down by one enum-valued dimension)."""
    _emit(name, MetricUnit.Count, 1, dimension)


def seconds(name: str, value: float) -> None:
    _emit(name, MetricUnit.Seconds, value, None)


def count_key_refresh_failure() -> None:
    """A key ring (signing or origin keys) that could not be loaded: the function fails closed."""
    count(KEY_REFRESH_FAILURES)


def report_revocation_staleness(staleness: float) -> None:
    seconds(REVOCATION_VIEW_STALENESS, staleness)


CLOUDFRONT_REQUEST_ID_HEADER = "x-amz-cf-id"
# CloudFront's request ids are base64url-ish, 56 characters; anything else is not logged as one.
_REQUEST_ID_SHAPE = re.compile(r"[A-Za-z0-9_=.-]{1,128}")


def cloudfront_request_id(headers: Mapping[str, str] | None) -> str | None:
    """``X-Amz-Cf-Id``: the id CloudFront gave this request (in its access log as
    ``x-edge-request-id``, and sent to every origin: the Lambdas and the fleet ingress)."""
    for name, value in (headers or {}).items():
        if name.lower() == CLOUDFRONT_REQUEST_ID_HEADER:
            return value if isinstance(value, str) and _REQUEST_ID_SHAPE.fullmatch(value) else None
    return None


def tag_request(headers: Mapping[str, str] | None, fallback: str | None) -> None:
    """Every log line of this invocation carries ``request_id``: CloudFront's id of the request,
    else API Gateway's (a request that did not come through CloudFront)."""
    logger.append_keys(request_id=cloudfront_request_id(headers) or fallback or "unknown")
