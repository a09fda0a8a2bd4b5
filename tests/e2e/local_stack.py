"""The local stack as the e2e tests drive it: a ``python -m preview_local`` process and HTTP to it.

HTTP goes through urllib with two changes that make it behave like curl: every host name
ending in ``.localhost`` connects to loopback (curl and browsers do that; this machine's
resolver does not), and redirects are returned, not followed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.message import Message
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

from preview_local.apps import APPS_ENV

READY_TIMEOUT_SECONDS = 60.0

STOP_TIMEOUT_SECONDS = 15.0


class _LoopbackConnection(HTTPConnection):
    """Connects to 127.0.0.1 whatever the host name; the Host header keeps the name."""

    def connect(self) -> None:
        self.sock = socket.create_connection(("127.0.0.1", self.port or 80), self.timeout)


class _LoopbackHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(_LoopbackConnection, req)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_LoopbackHandler, _NoRedirects)


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Message
    body: bytes = field(repr=False)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def fetch(
    url: str, method: str = "GET", headers: dict[str, str] | None = None, body: bytes | None = None
) -> Reply:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310
    try:
        with _OPENER.open(request, timeout=20) as response:
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Reply(error.code, error.headers, error.read())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class LocalStack:
    """A running ``preview-local``: its port, ``demo.json`` and output files."""

    process: subprocess.Popen[bytes]
    port: int
    state_dir: Path
    stdout_path: Path
    stderr_path: Path
    demo: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def api_url(self) -> str:
        return str(self.demo["api_url"])

    def preview_origin(self, sandbox_id: str) -> str:
        return f"http://{sandbox_id}.{self.demo['preview_domain']}:{self.port}"

    def mint(self, credential: str, sandbox_id: str, request: dict[str, Any] | None = None) -> Reply:
        return fetch(
            f"{self.api_url}/api/v1/sandboxes/{sandbox_id}/preview-token",
            "POST",
            {"Authorization": f"Bearer {credential}", "Content-Type": "application/json"},
            json.dumps(request or {}).encode(),
        )

    def preview_session(self, sandbox_id: str, scope: str = "read") -> str:
        """``name=value; ...`` of the cookies a fresh preview of ``sandbox_id`` sets (minted, exchanged)."""
        tenant_key = (
            "other_tenant_api_key" if sandbox_id == self.demo["other_tenant_sandbox_id"] else "api_key"
        )
        minted = self.mint(self.demo[tenant_key], sandbox_id, {"scope": scope})
        assert minted.status == 200, minted.text
        exchanged = fetch(minted.json()["url"])
        assert exchanged.status == 302, exchanged.text
        return "; ".join(value.split(";", 1)[0] for value in exchanged.headers.get_all("Set-Cookie", []))

    def origin_status(self, sandbox_id: str) -> dict[str, Any]:
        """What the demo sandbox app has received, asked through the data plane (the origin
        refuses anything else): a read preview of the sandbox fetches ``/api/status``."""
        cookies = self.preview_session(sandbox_id)
        reply = fetch(f"{self.preview_origin(sandbox_id)}/api/status", headers={"Cookie": cookies})
        assert reply.status == 200, reply.text
        status: dict[str, Any] = reply.json()
        return status

    def output(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8") + self.stderr_path.read_text(encoding="utf-8")

    @classmethod
    def start(
        cls, state_dir: Path, environment: dict[str, str] | None = None, apps: dict[str, str] | None = None
    ) -> LocalStack:
        """A new stack on a free port; ``environment`` adds to (or overrides) this process's.

        ``apps`` (sandbox id -> upstream URL) registers each app as a sandbox of the demo tenant,
        as ``PREVIEW_LOCAL_APPS="sbx-app=http://127.0.0.1:5173,..."`` does for ``make run``.
        """
        port = free_port()
        stdout_path, stderr_path = state_dir / "stack.out", state_dir / "stack.err"
        registered = {APPS_ENV: ",".join(f"{key}={url}" for key, url in apps.items())} if apps else {}
        env = {
            **os.environ,
            **(environment or {}),
            **registered,
            "PORT": str(port),
            "PREVIEW_LOCAL_STATE_DIR": str(state_dir),
        }
        with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "preview_local"], stdout=stdout, stderr=stderr, env=env
            )
        stack = cls(process, port, state_dir, stdout_path, stderr_path)
        stack._wait_until_ready()
        return stack

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"preview-local exited with {self.process.returncode}:\n{self.output()}")
            try:
                if fetch(f"http://127.0.0.1:{self.port}/dev-idp/jwks.json").status == 200:
                    self.demo = json.loads((self.state_dir / "demo.json").read_text(encoding="utf-8"))
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"preview-local was not ready within {READY_TIMEOUT_SECONDS:.0f} s:\n{self.output()}"
        )

    def stop(self) -> int:
        """SIGTERM, as ``make run`` gets on Ctrl-C or a service manager sends; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode
