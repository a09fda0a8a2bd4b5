"""The logger and metrics of every function, created once here and imported everywhere.

No X-Ray tracer: creating Powertools' Tracer loads the X-Ray SDK (0.2-0.5 s and ~50 MB), which
alone broke the mint's cold-start budget (README "Performance"). The functions keep
``Tracing: Active``: Lambda and API Gateway still record each invocation's segment (init,
duration, errors) without the SDK; only per-call subsegments are gone, and a warm mint makes
two DynamoDB calls whose latency its log line states.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

SERVICE = "preview-tokens"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="PreviewTokens", service=SERVICE)
