"""Real third-party apps as sandboxes: each started on a free loopback port, as a developer would.

The apps are installed by ``make real-apps`` from their locks (npm ``package-lock.json``,
``uv.lock``); nothing is downloaded here. Each app's own output goes to a log file the tests read.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from preview_local.cfn_template import PROJECT_ROOT

from tests.e2e.local_stack import fetch, free_port
from tests.support.http_server import answer, serving

APPS_DIR = PROJECT_ROOT / "tests" / "apps"
VITE_DIR = APPS_DIR / "vite-react"
JUPYTER_DIR = APPS_DIR / "jupyter"
JUPYTER_VENV = PROJECT_ROOT / ".venv-jupyter"
STREAMS_APP = APPS_DIR / "streams_app.py"
READY_TIMEOUT_SECONDS = 90.0  # a wait, not a speed check: Vite's first start optimises its deps
INSTALL_HINT = "`make real-apps` installs the real apps from their locks"


@dataclass
class RunningApp:
    name: str
    url: str  # the app direct, on loopback
    log_path: Path
    workdir: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def missing_installs() -> list[str]:
    """What ``make real-apps`` has not installed yet (empty when the apps can start)."""
    missing = []
    if not (VITE_DIR / "node_modules" / "vite" / "bin" / "vite.js").exists():
        missing.append(str(VITE_DIR / "node_modules"))
    if not (JUPYTER_VENV / "bin" / "jupyter-server").exists():
        missing.append(str(JUPYTER_VENV))
    return missing


@contextmanager
def _process(
    name: str,
    command: list[str],
    cwd: Path,
    env: dict[str, str],
    base_url: str,
    ready_path: str,
    log_dir: Path,
) -> Iterator[RunningApp]:
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    app = RunningApp(name, base_url, log_path, cwd)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{app.log()}")
            try:
                if fetch(base_url + ready_path).status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} was not ready within {READY_TIMEOUT_SECONDS:.0f} s:\n{app.log()}")
            time.sleep(0.2)
        yield app
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def vite_app(workdir: Path, log_dir: Path) -> Iterator[RunningApp]:
    """The Vite + React app from a copy of tests/apps/vite-react (the tests edit its sources)."""
    app_dir = workdir / "vite-react"
    shutil.copytree(VITE_DIR, app_dir, symlinks=True, ignore=shutil.ignore_patterns(".vite"))
    port = free_port()
    command = [
        shutil.which("node") or "node",
        str(app_dir / "node_modules" / "vite" / "bin" / "vite.js"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--strictPort",
    ]
    env = {**os.environ, "BROWSER": "none", "NO_COLOR": "1"}
    with _process("vite", command, app_dir, env, f"http://127.0.0.1:{port}", "/", log_dir) as app:
        yield app


KERNEL_NAME = "sandbox-python"


@contextmanager
def jupyter_app(workdir: Path, log_dir: Path) -> Iterator[RunningApp]:
    """Jupyter Server with no UI extension but the one-page notebook in tests/apps/jupyter/static,
    and a Python kernel started with ``--debug``: every message it receives is in the app's log."""
    home = workdir / "jupyter"
    kernel_dir = home / "data" / "kernels" / KERNEL_NAME
    kernel_dir.mkdir(parents=True)
    python = str(JUPYTER_VENV / "bin" / "python")
    kernel_spec = {
        "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}", "--debug"],
        "display_name": "Python (sandbox)",
        "language": "python",
    }
    (kernel_dir / "kernel.json").write_text(json.dumps(kernel_spec), encoding="utf-8")
    (home / "notebooks").mkdir()
    port = free_port()
    command = [
        str(JUPYTER_VENV / "bin" / "jupyter-server"),
        "--no-browser",
        "--allow-root",  # containers and CI often run as root
        "--ip=127.0.0.1",
        f"--port={port}",
        "--port-retries=0",
        f"--ServerApp.root_dir={home / 'notebooks'}",
        f"--ServerApp.extra_static_paths={json.dumps([str(JUPYTER_DIR / 'static')])}",
        # No allowed origins: Jupyter's own check (a kernel WebSocket's Origin is its Host) holds,
        # as on localhost. The ingress sends the app its own Host and, for the preview host's own
        # pages, its own Origin.
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        f"--MappingKernelManager.default_kernel_name={KERNEL_NAME}",
        "--ServerApp.default_url=/static/cell.html",
        "--ServerApp.log_level=DEBUG",
    ]
    env = {
        **os.environ,
        "JUPYTER_PATH": str(home / "data"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "IPYTHONDIR": str(home / "ipython"),
    }
    env.pop("VIRTUAL_ENV", None)
    with _process("jupyter", command, home, env, f"http://127.0.0.1:{port}", "/api/status", log_dir) as app:
        yield app


OWNER_XSRF = {"Cookie": "_xsrf=owner", "X-XSRFToken": "owner"}
"""What the sandbox's owner sends with a POST or DELETE on Jupyter itself: its XSRF check is on
(a stock server), and it wants the same token in the cookie and the header."""


def start_kernel(app: RunningApp) -> str:
    """A kernel started on the app itself (as the sandbox's owner would), its id."""
    reply = fetch(
        f"{app.url}/api/kernels",
        "POST",
        {"Content-Type": "application/json", **OWNER_XSRF},
        json.dumps({"name": KERNEL_NAME}).encode(),
    )
    assert reply.status == 201, reply.text
    kernel_id: str = reply.json()["id"]
    return kernel_id


@contextmanager
def streams_app(workdir: Path, log_dir: Path) -> Iterator[RunningApp]:
    port = free_port()
    command = [sys.executable, str(STREAMS_APP), "--port", str(port)]
    base_url = f"http://127.0.0.1:{port}"
    with _process("streams", command, workdir, dict(os.environ), base_url, "/status", log_dir) as app:
        yield app


EMBEDDING_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>An integrator's page</title>
<style>body{font:14px system-ui,sans-serif;margin:8px}
iframe{width:1060px;height:700px;border:1px solid #888}</style>
</head><body><p>Embedding page on <b id="embedder"></b>, framing a preview: %s</p>
<iframe id="app" src="%s" allow="clipboard-write"></iframe>
<script>document.getElementById('embedder').textContent = location.origin;</script>
</body></html>"""


class _EmbeddingPage(BaseHTTPRequestHandler):
    """``GET /?src=<minted URL>&label=<text>``: a page of another origin (127.0.0.1) with the preview
    in an iframe."""

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        source, label = query.get("src", ["about:blank"])[0], query.get("label", [""])[0]
        body = (EMBEDDING_PAGE % (html.escape(label), html.escape(source, quote=True))).encode()
        answer(self, body, "text/html; charset=utf-8", ("Cache-Control", "no-store"))

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the URL carries a preview token, and no log line may."""


@contextmanager
def embedding_server() -> Iterator[str]:
    """The embedding page's base URL (``http://127.0.0.1:<port>``), served from a thread."""
    with serving(_EmbeddingPage) as server:
        yield f"http://127.0.0.1:{server.server_port}"


def embedding_url(base_url: str, preview_url: str, label: str = "") -> str:
    return f"{base_url}/?{urlencode({'src': preview_url, 'label': label})}"
