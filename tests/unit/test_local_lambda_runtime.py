"""The local stack's in-process Lambda runtime: functions that share one process keep their own log lines."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from preview_local.deployment import FunctionDeployment
from preview_local.lambda_runtime import LambdaFunction
from preview_tokens.observability import logger

# A handler that logs through the layer's logger, as every function does. Told to wait, it waits
# (at most a second) for another invocation to leave a file before it writes its line; it says
# it is waiting with a file of its own.
HANDLER = """
import time
from pathlib import Path

from preview_tokens.observability import logger


@logger.inject_lambda_context(log_event=False)
def handler(event, context):
    signal = Path(event["signal"])
    if event.get("wait"):
        Path(event["wait"]).touch()
        deadline = time.monotonic() + 1.0
        while not signal.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    else:
        signal.touch()
    logger.info(event["message"])
    return {"ok": True}
"""


def deploy(tmp_path: Path, name: str) -> LambdaFunction:
    code_dir = tmp_path / name
    code_dir.mkdir()
    module = f"handler_{uuid.uuid4().hex}"
    (code_dir / f"{module}.py").write_text(HANDLER, encoding="utf-8")
    return LambdaFunction(FunctionDeployment(name, code_dir, f"{module}.handler", {}, 3, 128))


@pytest.fixture
def log_lines() -> Iterator[list[dict[str, Any]]]:
    """The layer logger's lines from here on, as the functions' own formatter writes them."""
    lines: list[dict[str, Any]] = []
    collect = logging.Handler()
    collect.setFormatter(logger.registered_formatter)
    collect.emit = lambda record: lines.append(json.loads(collect.format(record)))  # type: ignore[method-assign]
    stdlib_logger = logging.getLogger(logger.name)
    stdlib_logger.addHandler(collect)
    try:
        yield lines
    finally:
        stdlib_logger.removeHandler(collect)


def test_two_functions_invoked_at_once_each_log_their_own_name(
    tmp_path: Path, log_lines: list[dict[str, Any]]
) -> None:
    mint, exchange = deploy(tmp_path, "MintFunction"), deploy(tmp_path, "ExchangeFunction")
    signal = str(tmp_path / "exchange-invoked")
    mint.invoke({"message": "warm", "signal": str(tmp_path / "warm")})
    exchange.invoke({"message": "warm", "signal": str(tmp_path / "warm")})
    log_lines.clear()

    mint_started = tmp_path / "mint-started"
    slow = threading.Thread(
        target=mint.invoke, args=({"message": "minted", "signal": signal, "wait": str(mint_started)},)
    )
    slow.start()
    while not mint_started.exists():  # the mint is inside its handler
        time.sleep(0.01)
    exchange.invoke({"message": "exchanged", "signal": signal})
    slow.join()

    assert {line["message"]: line["function_name"] for line in log_lines} == {
        "minted": "MintFunction",
        "exchanged": "ExchangeFunction",
    }
