"""The mint function's X-Ray tracer (kept apart: it is expensive to import, see observability)."""

from __future__ import annotations

from aws_lambda_powertools import Tracer

from preview_tokens.observability import SERVICE

tracer = Tracer(service=SERVICE)
