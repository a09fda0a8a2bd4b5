"""A moto server on loopback standing in for DynamoDB and KMS, and the environment to reach it."""

from __future__ import annotations

import functools
import logging
import os
import threading
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from moto.dynamodb.responses import DynamoHandler
from moto.server import ThreadedMotoServer

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


_DYNAMODB_LOCK = threading.Lock()


def serialize_dynamodb_requests() -> None:
    """Make moto's DynamoDB apply each request atomically, as DynamoDB does.

    DynamoDB evaluates a condition expression and applies its write as one atomic step, and runs
    a ``TransactWriteItems`` all-or-nothing in isolation from concurrent writes to its items
    (the mint's rate-limit counter depends on both). moto's server handles requests on threads
    and does not lock its tables, so two concurrent conditional updates can both pass their
    condition. One lock around every DynamoDB request of this process's moto restores the
    atomicity (stricter than DynamoDB, which only serializes requests on the same items).
    """
    if getattr(DynamoHandler.call_action, "_serialized", False):
        return
    original = DynamoHandler.call_action

    @functools.wraps(original)
    def call_action(self: DynamoHandler) -> Any:
        with _DYNAMODB_LOCK:
            return original(self)

    call_action._serialized = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]


class MotoAws:
    """A running moto server; ``environment`` points boto3 and :mod:`aws_json` at it."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        """``host`` 0.0.0.0 lets a container reach it (sam local invoke); loopback by default."""
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self.endpoint_url = ""

    def start(self) -> MotoAws:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per AWS call is noise
        serialize_dynamodb_requests()
        self._server.start()
        _, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def environment(self) -> dict[str, str]:
        return {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint_url}

    def reset(self) -> None:
        """Forget every table, item and key (moto's reset API)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - loopback moto server
            pass


@contextmanager
def patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block, restoring them afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
