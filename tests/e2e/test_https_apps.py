"""A developer's ``https`` dev server behind ``make run``, its certificate from a local CA.

Vite with ``@vitejs/plugin-basic-ssl``, ``next dev --experimental-https`` and anything behind
mkcert serve ``https`` with a certificate no system CA signed. ``PREVIEW_LOCAL_APP_CA_FILE`` (or
``preview-local --app-ca-file``) names the CAs to check it against; the check is never skipped: an
app whose certificate fails it gets the 502 page, and never a request.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from preview_local.apps import APP_CA_FILE_ENV

from tests.e2e.local_stack import LocalStack, fetch
from tests.support.certificates import self_signed_certificate
from tests.support.http_server import answer, serving

pytestmark = pytest.mark.e2e

TRUSTED, UNTRUSTED = "sbx-tls", "sbx-tls-other"


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.paths.append(self.path)  # type: ignore[attr-defined]
        answer(self, f"served over https: {self.path}".encode(), "text/plain; charset=utf-8")

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def https_app(directory: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """An ``https`` app on loopback with a certificate of its own: its URL, the certificate (its own
    CA), and the paths it was asked for."""
    directory.mkdir(parents=True)
    certificate, key = self_signed_certificate(directory)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(certificate, key)
    paths: list[str] = []
    with serving(_Page, tls) as server:
        server.paths = paths  # type: ignore[attr-defined]
        yield f"https://127.0.0.1:{server.server_port}", certificate, paths


def test_an_https_app_is_served_when_its_ca_is_given_and_refused_when_its_certificate_fails(
    tmp_path: Path,
) -> None:
    (tmp_path / "stack").mkdir()
    with (
        https_app(tmp_path / "trusted") as (trusted_url, trusted_ca, trusted_paths),
        https_app(tmp_path / "untrusted") as (untrusted_url, _, untrusted_paths),
    ):
        stack = LocalStack.start(
            tmp_path / "stack",
            environment={APP_CA_FILE_ENV: str(trusted_ca)},
            apps={TRUSTED: trusted_url, UNTRUSTED: untrusted_url},
        )
        try:
            assert stack.demo["app_ca_file"] == str(trusted_ca)

            served = fetch(
                f"{stack.preview_origin(TRUSTED)}/@vite/client?t=1",
                headers={"Cookie": stack.preview_session(TRUSTED)},
            )
            refused = fetch(
                f"{stack.preview_origin(UNTRUSTED)}/",
                headers={"Cookie": stack.preview_session(UNTRUSTED)},
            )
        finally:
            exit_code = stack.stop()

    assert served.status == 200, served.text
    assert served.text == "served over https: /@vite/client?t=1"
    assert trusted_paths == ["/@vite/client?t=1"]
    assert refused.status == 502
    assert "Sandbox not responding" in refused.text
    assert untrusted_paths == []  # the handshake failed: no request reached the app
    assert exit_code == 0, stack.output()
