"""The runbooks of docs/runbooks.md, run on the local stack with the commands exactly as printed.

Each block marked ``<!-- runbook-test: NAME -->`` is read from the page; each command line runs
in bash as written, with ``STACK`` empty (``--stack ""`` is the environment's names: the local
stack's ``operator_environment``) and the variables the runbook tells the operator to note
(``OLD_KID``, ``KEY_ID``...) taken from the previous commands' output, as an operator would.
The stack is this module's own: rotating and revoking must not disturb the other e2e tests.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from preview_local.cfn_template import PROJECT_ROOT

from tests.e2e.local_stack import LocalStack, fetch
from tests.e2e.test_smoke import smoke
from tests.e2e.test_streams import upgrade

pytestmark = pytest.mark.e2e

RUNBOOKS = PROJECT_ROOT / "docs" / "runbooks.md"
WAIT_SECONDS = 30.0  # bounds the waits for a refresh (5 s locally); never asserted as a duration


def runbook(name: str) -> list[str]:
    """The command lines of the block marked ``runbook-test: name`` (comment lines dropped)."""
    text = RUNBOOKS.read_text(encoding="utf-8")
    match = re.search(rf"<!-- runbook-test: {re.escape(name)} -->\n```sh\n(.*?)```", text, re.S)
    assert match, f"docs/runbooks.md has no block {name}"
    return [line for line in match.group(1).splitlines() if line.strip() and not line.startswith("#")]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    running = LocalStack.start(tmp_path_factory.mktemp("preview-local-runbooks"))
    yield running
    running.stop()


def execute(stack: LocalStack, line: str, **variables: str) -> subprocess.CompletedProcess[str]:
    """One command line of a runbook, in bash, as printed."""
    env = {
        **os.environ,
        **stack.demo["operator_environment"],
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "STACK": "",
        **variables,
    }
    return subprocess.run(
        ["bash", "-c", line], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def run(stack: LocalStack, line: str, **variables: str) -> dict[str, Any]:
    """A runbook command that succeeds; its JSON output."""
    completed = execute(stack, line, **variables)
    assert completed.returncode == 0, f"{line}\n{completed.stderr}"
    document: dict[str, Any] = json.loads(completed.stdout)
    return document


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.5)


def jws_kid(compact: str) -> str:
    header = compact.removeprefix("mp_").split(".")[0]
    kid: str = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]
    return kid


def minted_kid(stack: LocalStack, api_key: str, sandbox_id: str) -> str:
    reply = stack.mint(api_key, sandbox_id, {"scope": "read"})
    assert reply.status == 200, reply.text
    return jws_kid(reply.json()["token"])


def page_status(stack: LocalStack, sandbox_id: str, cookies: str) -> int:
    return fetch(f"{stack.preview_origin(sandbox_id)}/", headers={"Cookie": cookies}).status


def cookie(cookies: str, name: str) -> str:
    return next(part.split("=", 1)[1] for part in cookies.split("; ") if part.startswith(f"{name}="))


def session_with_key(stack: LocalStack, api_key: str, sandbox_id: str, scope: str = "read") -> str:
    minted = stack.mint(api_key, sandbox_id, {"scope": scope})
    assert minted.status == 200, minted.text
    exchanged = fetch(minted.json()["url"])
    assert exchanged.status == 302, exchanged.text
    return "; ".join(value.split(";", 1)[0] for value in exchanged.headers.get_all("Set-Cookie", []))


def test_signing_key_rotation(stack: LocalStack) -> None:
    demo = stack.demo
    live = stack.preview_session(demo["sandbox_id"])
    listed, rotate, retire = runbook("signing-key-rotation")

    [old_kid] = [key["kid"] for key in run(stack, listed)["keys"] if key["status"] == "active"]
    new_kid = run(stack, rotate)["kid"]
    wait_until(
        lambda: minted_kid(stack, demo["api_key"], demo["sandbox_id"]) == new_kid, "signs with the new key"
    )
    # both keys verify meanwhile: the session signed by the old key still works
    assert page_status(stack, demo["sandbox_id"], live) == 200

    assert run(stack, retire, OLD_KID=old_kid) == {"kid": old_kid, "status": "retired"}

    wait_until(lambda: page_status(stack, demo["sandbox_id"], live) == 403, "the old key's session ends")
    assert smoke(stack).code == 0


def test_a_leaked_api_key(stack: LocalStack) -> None:
    demo = stack.demo
    tenant, sandbox = demo["tenant_id"], demo["sandbox_id"]
    leaked = run(stack, f"preview-tokens api-key create --tenant {tenant}")
    live = session_with_key(stack, leaked["api_key"], sandbox)
    listed, revoke, create = runbook("leaked-api-key")

    key_ids = [key["key_id"] for key in run(stack, listed, TENANT=tenant)["keys"]]
    assert leaked["key_id"] in key_ids
    revoked = run(stack, revoke, TENANT=tenant, KEY_ID=leaked["key_id"])
    replacement = run(stack, create, TENANT=tenant)

    assert revoked == {"key_id": leaked["key_id"], "revoked": True, "tokens_revoked": True}
    assert stack.mint(leaked["api_key"], sandbox).status == 401
    wait_until(lambda: page_status(stack, sandbox, live) == 403, "the leaked key's session ends")
    assert stack.mint(replacement["api_key"], sandbox).status == 200
    assert stack.mint(demo["api_key"], sandbox).status == 200  # the tenant's other keys still work


def test_mass_revocation(stack: LocalStack) -> None:
    demo = stack.demo
    tenant, sandbox, key = (
        demo["other_tenant_id"],
        demo["other_tenant_sandbox_id"],
        demo["other_tenant_api_key"],
    )
    revoke_sandbox, disable, enable = runbook("mass-revocation")
    variables = {"TENANT": tenant, "SANDBOX": sandbox}

    first = session_with_key(stack, key, sandbox)
    assert run(stack, revoke_sandbox, **variables)["tokens_revoked"] >= 1  # how many were live
    wait_until(lambda: page_status(stack, sandbox, first) == 403, "the sandbox's sessions end")
    sessions: list[str] = []

    def a_new_mint_works() -> bool:  # from the second after the marker (iat has whole seconds)
        sessions.append(session_with_key(stack, key, sandbox))
        return page_status(stack, sandbox, sessions[-1]) == 200

    wait_until(a_new_mint_works, "a token minted after the revocation works")
    second = sessions[-1]

    assert run(stack, disable, **variables)["status"] == "disabled"
    wait_until(lambda: page_status(stack, sandbox, second) == 403, "the tenant's sessions end")
    assert stack.mint(key, sandbox).status == 403

    run(stack, enable, **variables)
    wait_until(lambda: stack.mint(key, sandbox).status == 200, "the tenant mints again")


def stream_is_open(connection: socket.socket) -> bool:
    connection.setblocking(False)
    try:
        return connection.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    finally:
        connection.setblocking(True)


def open_stream(stack: LocalStack, sandbox_id: str, path: str, cookies: str) -> socket.socket:
    """A WebSocket upgrade left open (the origin relays it until the viewer closes it)."""
    key = base64.b64encode(os.urandom(16)).decode()
    host = f"{sandbox_id}.{stack.demo['preview_domain']}:{stack.port}"
    connection = socket.create_connection(("127.0.0.1", stack.port), timeout=10)
    connection.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nCookie: {cookies}\r\n"
            f"Origin: {stack.api_url}\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = connection.recv(1)
        assert chunk, "closed before the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return connection


def test_origin_key_rotation_with_live_streams(stack: LocalStack) -> None:
    demo = stack.demo
    sandbox = demo["sandbox_id"]
    live = session_with_key(stack, demo["api_key"], sandbox, "interact")
    stream = open_stream(stack, sandbox, "/input/stream", live)
    listed, rotate, retire = runbook("origin-key-rotation")

    [old_kid] = [key["kid"] for key in run(stack, listed)["keys"] if key["status"] == "active"]
    assert jws_kid(cookie(live, "__Host-mp_origin")) == old_kid
    new_kid = str(run(stack, rotate)["kid"])

    def new_sessions_carry_the_new_key() -> bool:
        fresh = session_with_key(stack, demo["api_key"], sandbox)
        return jws_kid(cookie(fresh, "__Host-mp_origin")) == new_kid

    wait_until(new_sessions_carry_the_new_key, "new sessions carry the new origin key")
    # both keys are published while the old one's sessions live: nothing of the live session breaks
    assert stream_is_open(stream)
    assert page_status(stack, sandbox, live) == 200
    assert upgrade(stack, sandbox, "/input/stream", live).status == 101

    # retiring it now would break them: the CLI refuses, and says until when
    refused = execute(stack, retire, OLD_ORIGIN_KID=old_kid)
    assert refused.returncode == 2, refused.stdout
    assert f"origin key {old_kid} may still sign live sessions" in refused.stderr
    assert stream_is_open(stream)
    assert page_status(stack, sandbox, live) == 200
    stream.close()


def test_a_leaked_origin_key(stack: LocalStack) -> None:
    demo = stack.demo
    sandbox = demo["sandbox_id"]
    listed = "preview-tokens origin-key list"
    [leaked] = [key["kid"] for key in run(stack, listed)["keys"] if key["status"] == "active"][-1:]
    live = session_with_key(stack, demo["api_key"], sandbox, "interact")
    assert jws_kid(cookie(live, "__Host-mp_origin")) == leaked
    rotate, retire = runbook("leaked-origin-key")

    new_kid = str(run(stack, rotate)["kid"])
    assert run(stack, retire, LEAKED_ORIGIN_KID=leaked) == {"kid": leaked, "status": "retired"}

    # the leaked key's sessions are refused at the ingress; new ones carry the new key and work
    wait_until(lambda: page_status(stack, sandbox, live) == 403, "the leaked key's session ends")

    def a_fresh_session_works() -> bool:
        fresh = session_with_key(stack, demo["api_key"], sandbox, "interact")
        return (
            jws_kid(cookie(fresh, "__Host-mp_origin")) == new_kid
            and page_status(stack, sandbox, fresh) == 200
        )

    wait_until(a_fresh_session_works, "a new session works with the new key")
