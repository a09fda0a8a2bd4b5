"""The logger and metrics of every function, created once here and imported everywhere.

Every log line passes :func:`redact_credentials` last, after formatting (message, extra keys,
exception text and traceback alike): what looks like a preview token, an API key, a JWT or a
Bearer value is replaced by ``[redacted]`` whatever put it there. Powertools writes JSON, so
control characters in a field are escaped by the encoder.

The tracer lives in :mod:`preview_tokens.tracing`: creating it loads the X-Ray SDK (about
0.4 s and 50 MB), which the data-plane authorizer must not pay on its cold start.
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
