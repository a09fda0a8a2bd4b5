"""Loading the API Gateway events in ``events/`` and deriving variants of them for tests."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from aws_lambda_powertools.utilities.typing import LambdaContext

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"


def load_event(name: str, **placeholders: str) -> dict[str, Any]:
    """The event ``events/<name>.json`` with ``{{placeholder}}`` strings replaced."""
    text = (EVENTS_DIR / f"{name}.json").read_text(encoding="utf-8")
    for key, value in placeholders.items():
        text = text.replace("{{" + key + "}}", json.dumps(value)[1:-1])
    event: dict[str, Any] = json.loads(text)
    return event


def set_header(event: dict[str, Any], name: str, value: str | None) -> dict[str, Any]:
    """A copy of a REST event with header ``name`` replaced (or removed when ``value`` is None)."""
    changed = copy.deepcopy(event)
    for key in ("headers", "multiValueHeaders"):
        headers = changed.get(key) or {}
        for existing in [k for k in headers if k.lower() == name.lower()]:
            del headers[existing]
        if value is not None:
            headers[name] = value if key == "headers" else [value]
        changed[key] = headers
    return changed


def with_body(event: dict[str, Any], body: str | None) -> dict[str, Any]:
    changed = copy.deepcopy(event)
    changed["body"] = body
    return changed


def for_sandbox(event: dict[str, Any], sandbox_id: str) -> dict[str, Any]:
    """A copy of a mint event addressed to another sandbox id."""
    changed = copy.deepcopy(event)
    changed["path"] = f"/api/v1/sandboxes/{sandbox_id}/preview-token"
    changed["pathParameters"] = {"id": sandbox_id}
    changed["requestContext"]["path"] = f"/v1{changed['path']}"
    return changed


@dataclass(frozen=True)
class FakeLambdaContext:
    """What a Lambda handler reads from its context object."""

    function_name: str = "preview-tokens-test"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 128
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:preview-tokens-test"
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"
    log_group_name: str = "/aws/lambda/preview-tokens-test"
    log_stream_name: str = "2026/11/28/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def lambda_context() -> LambdaContext:
    """A context object as Lambda passes it to a handler."""
    return cast(LambdaContext, FakeLambdaContext())
