"""The logger and metrics of every function, created once here and imported everywhere.

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

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

SERVICE = "preview-tokens"
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
metrics = Metrics(namespace="PreviewTokens", service=SERVICE)
