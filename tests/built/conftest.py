"""Built tier: the functions exactly as ``sam build`` packaged them, run the way Lambda runs them.

Each function runs in a fresh interpreter started with ``-I -S`` (no site-packages, no
PYTHONPATH) whose path is only the built function's folder and the built layer's ``python/``
folder, with the environment the template gives it, against a moto server. This proves the
artifact works (its requirements, its layer, its handler string), not only the source tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from preview_local.aws_resources import ensure_resources
from preview_local.deployment import LocalDeployment, deploy_locally
from preview_local.moto_aws import MotoAws

from tests.support.deployment import PREVIEW_DOMAIN, Deployment

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BUILD_DIR = PROJECT_ROOT / ".aws-sam" / "build"
LAYER_PYTHON = BUILD_DIR / "PreviewTokensLayer" / "python"
BOOTSTRAP = Path(__file__).with_name("lambda_bootstrap.py")
# The interpreter behind the virtualenv: started by its real path it is not the virtualenv's.
BASE_PYTHON = os.path.realpath(sys.executable)


@dataclass(frozen=True)
class BuiltInvocation:
    results: list[Any]
    modules: dict[str, str | None]
    versions: dict[str, str]
    loaded: list[str]
    """Which of boto3, botocore, pydantic, jwt the handler itself imported."""
    stderr: str
    """What the function wrote outside its log lines (Python warnings, tracebacks)."""


@dataclass
class BuiltFunctions:
    """Invoke a built function by its logical id in a clean Lambda-like interpreter."""

    local: LocalDeployment
    base_environment: dict[str, str]
    scratch: Path
    logs: list[str] = field(default_factory=list)

    def invoke(self, logical_id: str, *events: dict[str, Any]) -> BuiltInvocation:
        function = self.local.functions[logical_id]
        task_root = BUILD_DIR / logical_id
        assert task_root.is_dir(), f"{task_root} is missing: run `make template` (sam build) first"
        environment = {
            **self.base_environment,
            **function.environment,
            "AWS_LAMBDA_FUNCTION_NAME": logical_id,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
            "LAMBDA_TASK_ROOT": str(task_root),
            "_HANDLER": function.handler,
        }
        result_file = self.scratch / f"{logical_id}-{len(list(self.scratch.iterdir()))}.json"
        completed = subprocess.run(
            [
                BASE_PYTHON,
                "-I",
                "-S",
                str(BOOTSTRAP),
                str(task_root),
                str(LAYER_PYTHON),
                function.handler,
                str(result_file),
            ],
            input=json.dumps(list(events)),
            capture_output=True,
            text=True,
            env=environment,
            timeout=120,
            check=False,
        )
        assert completed.returncode == 0, f"{logical_id} failed:\n{completed.stderr[-4000:]}"
        self.logs.append(completed.stdout)
        document = json.loads(result_file.read_text(encoding="utf-8"))
        return BuiltInvocation(
            document["results"],
            document["modules"],
            document["versions"],
            document["loaded"],
            completed.stderr,
        )


@pytest.fixture(scope="session")
def moto_aws() -> Iterator[MotoAws]:
    if not LAYER_PYTHON.is_dir():
        pytest.fail(f"{LAYER_PYTHON} is missing: run `make template` (sam build) before the built tier")
    aws = MotoAws().start()
    yield aws
    aws.stop()


@pytest.fixture
def deployment(moto_aws: MotoAws, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    moto_aws.reset()
    for name, value in moto_aws.environment().items():
        monkeypatch.setenv(name, value)
    return Deployment(ensure_resources()).seed()


@pytest.fixture
def built(moto_aws: MotoAws, deployment: Deployment, tmp_path: Path) -> BuiltFunctions:
    resources = deployment.resources
    local = deploy_locally(
        {"PreviewDomain": PREVIEW_DOMAIN, "SandboxOriginUrl": "https://ingress.example.internal"},
        {**resources.tables, "SigningKeyMasterKey": resources.kms_key_id},
    )
    base = {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        **moto_aws.environment(),
        # As on Lambda: the X-Ray daemon's UDP address (nothing listens; segments are sent and lost).
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
        "_X_AMZN_TRACE_ID": "Root=1-67891233-abcdef012345678912345678;Parent=53995c3f42cd8ad8;Sampled=1",
    }
    return BuiltFunctions(local, base, tmp_path)
