"""The desktop sandbox: a real X display with a visible app, served over RFB and shown by noVNC.

* ``Xvfb`` — the display; ``preview_local.desktop_app`` — the app, logging the input it receives;
* two ``x11vnc`` servers on it: one started with ``-viewonly`` (it drops every pointer and key
  event of its viewers, on the server's side) for ``read`` sessions, one with input for
  ``interact`` sessions;
* two ``websockify`` bridges (WebSocket <-> RFB), one per x11vnc; the local origin relays a
  stream's upgrade to the one of the session's scope;
* noVNC's client (``/usr/share/novnc``) is what the sandbox's root page loads.

All from Debian (:data:`INSTALL_COMMAND`): one installer for the whole desktop, the same way the
tests get chromium, and the exact versions checked together on this OS (noVNC 1.3.0).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from preview_tokens.keys.tokens import Scope

NOVNC_DIR = Path("/usr/share/novnc")
PACKAGES = ("xvfb", "x11vnc", "novnc", "websockify", "python3-tk")
INSTALL_COMMAND = "sudo apt-get install -y " + " ".join(PACKAGES)
SCREEN = "1024x640x24"
START_TIMEOUT_SECONDS = 15.0


def missing_parts() -> list[str]:
    """What this machine lacks for the desktop sandbox (empty: it can run)."""
    missing = [tool for tool in ("Xvfb", "x11vnc", "websockify") if shutil.which(tool) is None]
    if not (NOVNC_DIR / "core" / "rfb.js").exists():
        missing.append("noVNC (/usr/share/novnc)")
    probe = subprocess.run([sys.executable, "-c", "import tkinter"], capture_output=True, check=False)
    if probe.returncode != 0:
        missing.append("tkinter (python3-tk)")
    return missing


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _display_of(xvfb: subprocess.Popen[bytes], announced: int) -> str:
    """The display ``Xvfb -displayfd`` took, read from ``announced`` once it listens on it.

    The X server picks a free display number itself and writes it when it listens: two stacks
    starting at once (two test workers, two ``make run``) never share a display, as they could when
    we chose a number that looked free and started Xvfb on it (the other stack's x11vnc then
    served our display, and lost it when the other stack stopped)."""
    received = b""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not received.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([announced], [], [], left)[0]:
            raise RuntimeError(f"Xvfb did not announce its display within {START_TIMEOUT_SECONDS:.0f} s")
        chunk = os.read(announced, 16)
        if not chunk:
            raise RuntimeError(f"Xvfb exited with {xvfb.wait()} before it announced its display")
        received += chunk
    return f":{int(received)}"


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port} within {START_TIMEOUT_SECONDS:.0f} s")


@dataclass
class DesktopSandbox:
    """The running desktop: its WebSocket bridges by scope, and the app's input log."""

    log_path: Path
    bridge_ports: dict[Scope, int]
    display: str = ""
    """The X display (``:N``) Xvfb took."""
    rfb_ports: dict[Scope, int] = field(default_factory=dict)
    """The x11vnc servers themselves (RFB over TCP), by scope: the view-only driver's."""
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)

    @classmethod
    def start(cls, directory: Path) -> DesktopSandbox:
        directory.mkdir(parents=True, exist_ok=True)
        desktop = cls(directory / "desktop-input.jsonl", {})
        output = (directory / "desktop.log").open("ab")
        try:
            announced, announcing = os.pipe()
            try:
                xvfb = desktop._spawn(
                    ["Xvfb", "-displayfd", str(announcing), "-screen", "0", SCREEN, "-nolisten", "tcp"],
                    output,
                    dict(os.environ),
                    pass_fds=(announcing,),
                )
            finally:
                os.close(announcing)  # Xvfb holds its copy: EOF here if it exits without a display
            try:
                desktop.display = _display_of(xvfb, announced)
            finally:
                os.close(announced)
            env = {**os.environ, "DISPLAY": desktop.display}
            desktop._spawn(
                [sys.executable, "-m", "preview_local.desktop_app", str(desktop.log_path)], output, env
            )
            for scope in (Scope.READ, Scope.INTERACT):
                rfb_port = _free_port()
                view_only = ["-viewonly"] if scope is Scope.READ else []
                x11vnc = desktop._spawn(
                    ["x11vnc", "-display", desktop.display, "-rfbport", str(rfb_port), "-localhost", "-nopw",
                     "-shared", "-forever", "-quiet", "-noxdamage", *view_only],
                    output,
                    env,
                )  # fmt: skip
                _wait_for_port(rfb_port, x11vnc, "x11vnc")
                # The bridge's listening socket is bound here and handed over (websockify --inetd):
                # no port for another process to take between the choice and the listen.
                with socket.create_server(("127.0.0.1", 0)) as listening:
                    bridge_port = listening.getsockname()[1]
                    bridge = desktop._spawn(
                        ["websockify", "--inetd", f"127.0.0.1:{rfb_port}"],
                        output,
                        env,
                        stdin=listening.fileno(),
                    )
                _wait_for_port(bridge_port, bridge, "websockify")
                desktop.bridge_ports[scope] = bridge_port
                desktop.rfb_ports[scope] = rfb_port
        except Exception:
            desktop.stop()
            raise
        finally:
            output.close()  # each process writes through its own copy
        return desktop

    def _spawn(
        self,
        argv: list[str],
        output: BinaryIO,
        env: dict[str, str],
        pass_fds: tuple[int, ...] = (),
        stdin: int | None = None,
    ) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(  # noqa: S603 - fixed argv
            argv, stdin=stdin, stdout=output, stderr=output, env=env, pass_fds=pass_fds
        )
        self.processes.append(process)
        return process

    def received(self) -> dict[str, object]:
        """What the app has received: the typed text and the number of clicks (from its log)."""
        typed, clicks = "", 0
        if self.log_path.exists():
            for line in self.log_path.read_text(encoding="utf-8").splitlines():
                event = json.loads(line)
                if event["event"] == "key":
                    typed += event["value"]
                else:
                    clicks += 1
        return {"typed": typed, "clicks": clicks}

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
