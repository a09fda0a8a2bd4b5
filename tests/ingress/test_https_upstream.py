"""An app that serves ``https`` with a certificate of the fleet's own CA (``--upstream-ca-file``).

Its bodies must reach the viewer as the app sent them, large ones included (the zero-copy relay
never takes a TLS connection), and its WebSockets must work; an app whose certificate the ingress
cannot check is never relayed.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from preview_ingress import IngressConfig
from preview_ingress.config import IngressConfigError

from tests.ingress.conftest import (
    PATTERN,
    SANDBOX,
    SECRET,
    Ingress,
    Sandbox,
    assertion,
    cloudfront,
    serving_sandbox,
    verifier,
)
from tests.ingress.test_admission import fetch
from tests.support.certificates import self_signed_certificate

LARGE_BYTES = 3 * 1024 * 1024 + 17  # past the size the socket relay takes on plain TCP


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path)


@pytest.fixture
def https_sandbox(certificate: tuple[Path, Path]) -> Iterator[Sandbox]:
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(*certificate)
    with serving_sandbox(tls) as app:
        yield app


@pytest.fixture
def https_ingress(
    https_sandbox: Sandbox, certificate: tuple[Path, Path], make_ingress: Callable[..., Ingress]
) -> Ingress:
    """The ingress in front of the https app, stopped before the app (its TLS connections closed)."""
    return make_ingress(upstream=https_sandbox.url, sandbox_id=SANDBOX, upstream_ca_file=str(certificate[0]))


def _pattern(size: int) -> str:
    digest = hashlib.sha256()
    for offset in range(0, size, len(PATTERN)):
        digest.update(PATTERN[: min(len(PATTERN), size - offset)])
    return digest.hexdigest()


def test_an_https_app_of_the_configured_ca_is_relayed_whole(
    make_ingress: Callable[..., Ingress], https_sandbox: Sandbox, certificate: tuple[Path, Path]
) -> None:
    ingress = make_ingress(
        upstream=https_sandbox.url, sandbox_id=SANDBOX, upstream_ca_file=str(certificate[0])
    )
    token = assertion(scope="read")

    async def download() -> tuple[int, str, int]:
        digest, received = hashlib.sha256(), 0
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{ingress.url}/download?bytes={LARGE_BYTES}", headers=cloudfront(token)) as response,
        ):
            async for chunk in response.content.iter_chunked(1 << 16):
                digest.update(chunk)
                received += len(chunk)
            return response.status, digest.hexdigest(), received

    small = fetch("GET", f"{ingress.url}/echo?q=1", cloudfront(token))
    assert small.status == 200
    assert asyncio.run(download()) == (200, _pattern(LARGE_BYTES), LARGE_BYTES)


def test_an_https_apps_websocket_relays_both_ways(
    make_ingress: Callable[..., Ingress], https_sandbox: Sandbox, certificate: tuple[Path, Path]
) -> None:
    ingress = make_ingress(
        upstream=https_sandbox.url, sandbox_id=SANDBOX, upstream_ca_file=str(certificate[0])
    )

    async def talk() -> list[str]:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{ingress.url}/ws", headers=cloudfront(assertion())) as ws,
        ):
            await ws.send_str("keypress")
            return [(await ws.receive(timeout=15)).data for _ in range(2)]

    assert asyncio.run(talk()) == ["hello from the app", "got keypress"]


def test_an_https_app_the_ingress_cannot_check_is_never_relayed(
    https_sandbox: Sandbox, make_ingress: Callable[..., Ingress]
) -> None:
    ingress = make_ingress(upstream=https_sandbox.url, sandbox_id=SANDBOX)  # the system's CAs only

    answer = fetch("GET", f"{ingress.url}/echo?q=1", cloudfront(assertion(scope="read")))

    assert answer.status == 502
    assert b"/echo" not in answer.body  # the app's echo never reached the viewer


def test_a_missing_ca_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(IngressConfigError, match="upstream_ca_file"):
        IngressConfig(
            secret=SECRET,
            verifier=verifier(),
            revocation_feed=None,
            revocations_disabled=True,
            upstream="https://127.0.0.1:8443",
            sandbox_id=SANDBOX,
            upstream_ca_file=str(tmp_path / "missing.pem"),
        )
