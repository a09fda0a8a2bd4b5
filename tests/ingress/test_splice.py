"""Which connections the zero-copy relay may take: plain TCP only, never TLS.

Spliced bytes go as they are on the socket. On a TLS connection those are records, so a body
spliced from an ``https`` app would reach the viewer encrypted; :func:`plain_socket` must refuse
such a transport on both event loops the ingress runs on (uvloop in the CLI, asyncio elsewhere).
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from preview_ingress.splice import plain_socket

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "uvloop": uvloop.new_event_loop,
    "asyncio": asyncio.new_event_loop,
}


def _certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


async def _connected(
    server_context: ssl.SSLContext | None, client_context: ssl.SSLContext | None
) -> tuple[bool, bool]:
    """Whether ``plain_socket`` gives a socket for the client's and the server's transport."""
    loop = asyncio.get_running_loop()
    accepted: asyncio.Future[asyncio.BaseTransport] = loop.create_future()

    class Accepting(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted.set_result(transport)

    server = await loop.create_server(Accepting, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    client, _ = await loop.create_connection(
        asyncio.Protocol,
        "127.0.0.1",
        port,
        ssl=client_context,
        server_hostname="localhost" if client_context else None,
    )
    try:
        server_side = await asyncio.wait_for(accepted, 10)
        return plain_socket(client) is not None, plain_socket(server_side) is not None
    finally:
        client.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("loop", LOOPS)
def test_a_tls_connection_is_never_spliced_on_either_side(tmp_path: Path, loop: str) -> None:
    cert, key = _certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))

    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        assert runner.run(_connected(server_context, client_context)) == (False, False)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_plain_tcp_connection_may_be_spliced_on_both_sides(loop: str) -> None:
    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        assert runner.run(_connected(None, None)) == (True, True)
