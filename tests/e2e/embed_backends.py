"""The integrator backend examples of ``docs/embed/`` run as their README says, against the local stack."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from preview_local.cfn_template import PROJECT_ROOT

from tests.e2e.local_stack import LocalStack, fetch, free_port

EMBED_DIR = PROJECT_ROOT / "docs" / "embed"
BACKENDS = {
    "python": [sys.executable, str(EMBED_DIR / "backend.py")],
    "node": [shutil.which("node") or "node", str(EMBED_DIR / "backend.mjs")],
}
READY_TIMEOUT_SECONDS = 20.0


@contextmanager
def running_backend(kind: str, stack: LocalStack, log_dir: Path) -> Iterator[str]:
    """The example backend ``kind`` on a free port, reading the stack's demo.json; its base URL."""
    port = free_port()
    env = {**os.environ, "PORT": str(port), "PREVIEW_LOCAL_DEMO_JSON": str(stack.state_dir / "demo.json")}
    env.pop("PREVIEW_API_KEY", None)
    log_path = log_dir / f"backend-{kind}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(BACKENDS[kind], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the {kind} backend exited:\n{log_path.read_text()}")
            try:
                if fetch(url + "/").status == 200:
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
