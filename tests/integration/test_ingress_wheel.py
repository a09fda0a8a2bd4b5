"""The fleet ingress's wheel where nothing can be compiled: the pure Python package, which runs.

``make test`` builds the wheel with mypyc and runs ``tests/ingress`` on it; this is the other way a
user's first ``uvx --from ./ingress`` can go (no C compiler or no Python headers on the host).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _uv() -> str:
    return shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")


def test_a_wheel_built_where_the_c_compiler_fails_is_the_pure_package_and_imports(tmp_path: Path) -> None:
    source = tmp_path / "ingress"
    shutil.copytree(
        ROOT / "ingress", source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    environment = {**os.environ, "CC": "/bin/false", "UV_PYTHON_DOWNLOADS": "never"}
    environment.pop("PREVIEW_INGRESS_PURE_PYTHON", None)
    built = subprocess.run(
        [
            _uv(),
            "build",
            "--wheel",
            "--python",
            sys.executable,
            str(source),
            "--out-dir",
            str(tmp_path / "wheel"),
        ],
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert built.returncode == 0, built.stderr[-3000:]
    assert "preview-ingress build: compiling" in built.stderr  # mypyc ran: the compiler is what failed
    assert "the C compiler failed" in built.stderr
    (wheel,) = (tmp_path / "wheel").glob("*.whl")
    assert wheel.name.endswith("-py3-none-any.whl")  # installs on any platform, as the pure package can
    names = zipfile.ZipFile(wheel).namelist()
    assert [name for name in names if name.endswith(".so")] == []
    assert {"preview_ingress/proxy.py", "preview_ingress/upstream.py", "preview_ingress/cli.py"} <= set(names)

    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    ran = subprocess.run(
        [sys.executable, "-c", "import preview_ingress as p; print(p.compiled(), p.__file__)"],
        env={**os.environ, "PYTHONPATH": str(tmp_path / "site")},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    compiled, location = ran.stdout.split()
    assert (compiled, Path(location).parent) == ("False", tmp_path / "site" / "preview_ingress")
