"""The logger and metrics of every function, created once here and imported everywhere.

The tracer lives in :mod:`preview_tokens.tracing`: creating it loads the X-Ray SDK (about
0.4 s and 50 MB), which the data-plane authorizer must not pay on its cold start.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

SERVICE = "preview-tokens"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="PreviewTokens", service=SERVICE)
