"""The ingress's build: its per-request path compiled to C by mypyc when it can be, else pure Python.

A wheel (``uvx --from ./ingress``, ``uv tool install``, ``uv build``, ``pip install``) compiles
:data:`COMPILED` with mypyc (part of mypy, a build requirement): the same source, type-checked,
turned into C extension modules, a third less CPU per relayed request (ingress/README.md
"Performance"). It needs a C compiler and Python's headers (Debian: ``gcc``, ``python3-dev``). When
either is missing, or ``PREVIEW_INGRESS_PURE_PYTHON=1``, the wheel is the pure Python package, which
behaves the same, slower; it says which on stderr, and the running ingress in its ``listening``
line (``"compiled": true``). An editable install (this repository's own environment) stays pure
Python, so an edit to a module takes effect without a rebuild.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from typing import Any

from setuptools import setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_ext import build_ext

# The modules every relayed request runs through. Not the CLI, the configuration, the revocation
# feed or the server's start-up: they run once, or every few seconds.
COMPILED = [
    "preview_ingress/proxy.py",
    "preview_ingress/upstream.py",
    "preview_ingress/viewer.py",
    "preview_ingress/access_log.py",
    "preview_ingress/flow.py",
    "preview_ingress/metrics.py",
]
# The build environment holds mypy and nothing of the ingress's dependencies: what they export is
# typed Any there, which mypyc calls as Python does (none of the compiled classes subclasses them).
MYPY_FLAGS = [
    "--config-file=",
    "--ignore-missing-imports",
    "--follow-imports=silent",
    "--python-version=3.11",
]


def _say(message: str) -> None:
    print(f"preview-ingress build: {message}", file=sys.stderr)


class _OptionalBuildExt(build_ext):
    """Compiles the extensions; if the compiler fails, leaves none behind (the pure Python package)."""

    def initialize_options(self) -> None:
        super().initialize_options()
        self.parallel = os.cpu_count() or 1

    def run(self) -> None:
        try:
            super().run()
        except Exception as error:
            for built in self.get_outputs():
                if os.path.exists(built):
                    os.remove(built)
            self.extensions = []
            _say(
                f"the C compiler failed ({type(error).__name__}, its output above): the wheel is pure Python"
            )


class _Wheel(bdist_wheel):
    """Tagged for the interpreter and platform it was compiled on, or ``py3-none-any`` when nothing
    was compiled: the pure package then installs anywhere, as it can."""

    def run(self) -> None:
        if not self.skip_build:
            self.run_command("build")  # the compiler's outcome decides the tag; run once, not again below
        if not self.get_finalized_command("build_ext").extensions:
            self.root_is_pure = True
            self.distribution.ext_modules = []  # else the files would install as platform-specific
        super().run()


# Every build compiles and packs in a directory of its own: setuptools would otherwise reuse ./build,
# and ship an extension module left there by an earlier build (of a module no longer compiled).
# (mypyc writes its C files to ./build, all of them anew each time: setuptools wants them relative.)
BUILD_DIR = tempfile.mkdtemp(prefix="preview-ingress-build-")
atexit.register(shutil.rmtree, BUILD_DIR, ignore_errors=True)


def _extensions() -> list[Any]:
    if os.environ.get("PREVIEW_INGRESS_PURE_PYTHON") == "1":
        _say("PREVIEW_INGRESS_PURE_PYTHON=1: pure Python")
        return []
    if "editable_wheel" in sys.argv:
        return []  # the repository's own environment: edits take effect as they are saved
    try:
        from mypyc.build import mypycify
    except ImportError:
        _say("mypyc is not installed: pure Python")
        return []
    try:
        extensions: list[Any] = mypycify([*MYPY_FLAGS, *COMPILED], opt_level="3", multi_file=True)
    except (Exception, SystemExit) as error:
        _say(f"mypyc could not compile the modules ({error}): pure Python")
        return []
    _say(f"compiling {len(COMPILED)} modules with mypyc")
    return extensions


setup(
    ext_modules=_extensions(),
    cmdclass={"build_ext": _OptionalBuildExt, "bdist_wheel": _Wheel},
    options={"build": {"build_base": os.path.join(BUILD_DIR, "setuptools")}},
)
