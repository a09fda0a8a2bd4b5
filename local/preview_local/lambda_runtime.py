"""Lambda functions run in this process, loaded and invoked the way the Lambda runtime does it.

The handler ``module.function`` is imported from the function's ``CodeUri`` directory on the
first invocation (the cold start); the layer's packages come from the installed project, as
``/opt/python`` would provide them. Events and results go through JSON, as on Lambda, so a
handler returning something Lambda could not serialize fails here too.

One invocation at a time in the whole process. Lambda never runs two at once in one execution
environment (handlers keep per-invocation state in globals), and here every function shares the
process's modules too: the layer's one Powertools ``logger`` holds the running invocation's
``function_name`` and correlation id, so a mint and an exchange at once would write each other's
names in their log lines. No handler invokes another, so the lock cannot be taken twice.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from preview_local.deployment import ACCOUNT_ID, REGION, FunctionDeployment

Handler = Callable[[Any, Any], Any]

# Held for each invocation of any function (the module docstring says why).
_INVOCATION_LOCK = threading.Lock()


class Invocable(Protocol):
    """What the gateway needs of a function: invoke it with an event, get its result."""

    def invoke(self, event: dict[str, Any]) -> Any: ...


class HandlerLoadError(RuntimeError):
    """The function's handler cannot be imported from its code directory."""


@dataclass
class LambdaContext:
    """The context object a handler receives (the attributes Powertools reads)."""

    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    _started: float = field(default_factory=time.monotonic, repr=False)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"local/[{self.function_version}]preview-local"

    def get_remaining_time_in_millis(self) -> int:
        elapsed = time.monotonic() - self._started
        return max(0, int((self.timeout_seconds - elapsed) * 1000))


def load_handler(code_dir: Path, handler: str) -> Handler:
    """Import ``module.function`` from ``code_dir`` (a dotted module is a path below it)."""
    module_name, _, function_name = handler.rpartition(".")
    if not module_name or not function_name:
        raise HandlerLoadError(f"handler {handler!r} is not module.function")
    source = code_dir.joinpath(*module_name.split(".")).with_suffix(".py")
    loaded = sys.modules.get(module_name)
    if loaded is not None:
        if Path(getattr(loaded, "__file__", "") or "").resolve() != source.resolve():
            raise HandlerLoadError(f"another module named {module_name} is loaded already")
    else:
        spec = importlib.util.spec_from_file_location(module_name, source)
        if spec is None or spec.loader is None:
            raise HandlerLoadError(f"cannot import {source}")
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = loaded
        try:
            spec.loader.exec_module(loaded)
        except BaseException:
            del sys.modules[module_name]
            raise
    function = getattr(loaded, function_name, None)
    if not callable(function):
        raise HandlerLoadError(f"{source} has no function {function_name}")
    return function  # type: ignore[no-any-return]


class LambdaFunction:
    """One deployed function with one execution environment."""

    def __init__(self, deployment: FunctionDeployment) -> None:
        self.deployment = deployment
        self._handler: Handler | None = None

    @property
    def name(self) -> str:
        return self.deployment.name

    def invoke(self, event: dict[str, Any]) -> Any:
        """The handler's JSON result; its exceptions propagate (a Lambda function error)."""
        payload = json.loads(json.dumps(event))
        with _INVOCATION_LOCK:
            if self._handler is None:
                self._handler = load_handler(self.deployment.code_dir, self.deployment.handler)
            context = LambdaContext(
                function_name=self.name,
                memory_limit_in_mb=self.deployment.memory_mb,
                timeout_seconds=self.deployment.timeout_seconds,
            )
            result = self._handler(payload, context)
        return json.loads(json.dumps(result))
