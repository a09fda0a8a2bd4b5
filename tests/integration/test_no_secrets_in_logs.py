"""No log line at any level carries a token, an API key, a key's plaintext or an Authorization header."""

from __future__ import annotations

import base64
import functools
import io
import json
import logging
from collections.abc import Iterator

import mint_api
import pytest
from preview_tokens.data_plane.access import SESSION_COOKIE
from preview_tokens.observability import logger

from tests.support.deployment import SANDBOX, Deployment
from tests.support.events import for_sandbox, lambda_context, load_event, set_header, with_body
from tests.support.exchange import exchange_handler
from tests.support.preview_tokens import token_for
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


@pytest.fixture
def formatted_log_lines() -> Iterator[io.StringIO]:
    """Exactly what the functions write to CloudWatch: the logger's formatted lines, at DEBUG."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logger.registered_formatter)
    previous = logger.log_level
    logger.addHandler(handler)
    logger.setLevel("DEBUG")
    yield buffer
    logger.handlers.remove(handler)
    logger.setLevel(previous)


def test_a_credential_in_an_unexpected_error_is_redacted_from_the_log_line(
    deployment: Deployment, formatted_log_lines: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = token_for(deployment)

    class Broken:
        def mint(self, *_: object) -> None:
            raise RuntimeError(f"cannot mint with Bearer {deployment.api_key} for {token}")

    monkeypatch.setattr(mint_api, "mint_service", functools.cache(Broken))
    response = from_proxy_result(
        mint_api.lambda_handler(load_event("mint_read", credential=deployment.api_key), lambda_context())
    )

    logs = formatted_log_lines.getvalue()
    assert response.status == 500
    assert "RuntimeError" in logs
    assert "[redacted]" in logs
    assert token.rsplit(".", 1)[1] not in logs
    assert deployment.api_key not in logs


def test_requests_carrying_credentials_in_odd_places_log_none_and_stay_one_json_line_each(
    deployment: Deployment, formatted_log_lines: io.StringIO
) -> None:
    """Through the exchange route (its ``?mt=`` authorizer, then the exchange) and the cookie check."""
    token = token_for(deployment)
    forged_host = set_header(
        load_event("exchange_mt", token=token[:-4] + "AAAA"),
        "Host",
        f"{SANDBOX}.example.com\x1b[2J\n{{forged}}",
    )
    granted = set_header(
        load_event("exchange_mt", token=token), "Cookie", f"{SESSION_COOKIE}=garbage; x={token}"
    )
    in_the_query = load_event("exchange_mt", token=token + "x")
    in_the_query["queryStringParameters"] = {"m%74": token, "mt": token + "x"}
    checked = set_header(
        load_event("exchange_cookie_check"), "Cookie", f"{SESSION_COOKIE}=garbage; x={token}"
    )
    for event in (forged_host, granted, in_the_query, checked):
        exchange_handler(event, lambda_context())
    mint_api.lambda_handler(
        for_sandbox(load_event("mint_read", credential=deployment.api_key), token), lambda_context()
    )

    lines = formatted_log_lines.getvalue().splitlines()
    assert "preview session started" in formatted_log_lines.getvalue()
    for line in lines:
        json.loads(line)  # a control character in a field cannot break or forge a line
    assert not [line for line in lines if token.rsplit(".", 1)[1] in line or "mp_eyJ" in line]
