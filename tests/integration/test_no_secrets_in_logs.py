"""No log line at any level carries a token, an API key, a key's plaintext or an Authorization header."""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Iterator

import mint_api
import pytest
from preview_tokens.observability import logger

from tests.support.deployment import SANDBOX, Deployment
from tests.support.events import lambda_context, load_event, with_body
from tests.support.responses import from_proxy_result


@pytest.fixture
def every_log_line(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """Everything the functions' logger and any library logger write, at DEBUG."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logger.registered_formatter)
    previous = logger.log_level
    logger.addHandler(handler)
    logger.setLevel("DEBUG")
    caplog.set_level(logging.DEBUG)
    yield buffer
    logger.handlers.remove(handler)
    logger.setLevel(previous)
    buffer.write("\n".join(record.getMessage() + repr(record.__dict__) for record in caplog.records))


def test_a_full_mint_and_its_failures_log_no_secret(
    deployment: Deployment, every_log_line: io.StringIO
) -> None:
    secret = deployment.signing_secret(deployment.kid)
    minted = from_proxy_result(
        mint_api.lambda_handler(load_event("mint_read", credential=deployment.api_key), lambda_context())
    )
    refused = [
        load_event("mint_read", credential=deployment.api_key_without_scope),
        load_event("mint_read", credential="msk_" + "Z" * 43),
        with_body(load_event("mint_read", credential=deployment.api_key), '{"scope": "root"}'),
        load_event("mint_other_tenant_sandbox", credential=deployment.api_key),
    ]
    for event in refused:
        mint_api.lambda_handler(event, lambda_context())

    logs = every_log_line.getvalue()
    token = minted.json()["token"]
    assert minted.status == 200
    assert "preview token minted" in logs
    assert SANDBOX in logs
    forbidden = {
        "token": token,
        "token signature": token.rsplit(".", 1)[1],
        "token payload": token.split(".")[1],
        "api key": deployment.api_key,
        "api key without scope": deployment.api_key_without_scope,
        "unknown api key": "msk_" + "Z" * 43,
        "authorization header": "Bearer msk_",
        "signing key (hex)": secret.hex(),
        "signing key (base64)": base64.b64encode(secret).decode(),
        "signing key (bytes)": repr(secret)[2:-1],
    }
    leaked = [name for name, value in forbidden.items() if value in logs]
    assert leaked == []
