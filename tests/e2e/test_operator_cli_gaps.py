"""Issue 15's operator CLI gaps, each as a platform team meets it, against the running local stack.

The CLI runs as ``make run`` leaves it: in the project directory (here a copy, holding only the
stack's ``.local/demo.json``) with nothing exported, no table name, no AWS endpoint, no state dir.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from preview_tokens.operator.operator_cli import _OUTPUT_ENV, EDGE_STORE_FILE, STATE_DIR_ENV

from tests.e2e.local_stack import LocalStack, free_port
from tests.e2e.test_operator_cli import CLI
from tests.e2e.test_revocation import new_tenant

pytestmark = pytest.mark.e2e

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def clean_environment() -> dict[str, str]:
    """This process's environment without anything that would tell the CLI where to act."""
    told = {*_OUTPUT_ENV.values(), EDGE_STORE_FILE, STATE_DIR_ENV}
    return {
        name: value for name, value in os.environ.items() if name not in told and not name.startswith("AWS_")
    }


def run(cwd: Path, *args: str) -> Run:
    completed = subprocess.run(
        [str(CLI), *args], cwd=cwd, env=clean_environment(), capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    return Run(completed.returncode, completed.stdout, completed.stderr)


@pytest.fixture
def project(stack: LocalStack, tmp_path: Path) -> Path:
    """A project directory as ``make run`` leaves it: ``.local/demo.json`` of the running stack."""
    (tmp_path / ".local").mkdir()
    shutil.copy(stack.state_dir / "demo.json", tmp_path / ".local" / "demo.json")
    (tmp_path / "docs").mkdir()
    return tmp_path


def ok(cwd: Path, *args: str) -> Any:
    result = run(cwd, *args)
    assert result.code == 0, result.err
    return result.json()


def test_the_cli_finds_the_local_stack_with_nothing_exported(stack: LocalStack, project: Path) -> None:
    # From the project directory and from a directory below it
    for cwd in (project, project / "docs"):
        listed = ok(cwd, "sandbox", "list", "--tenant", stack.demo["tenant_id"])
        assert stack.demo["sandbox_id"] in [row["sandbox_id"] for row in listed["sandboxes"]]


def test_with_no_stack_anywhere_the_error_says_what_to_do_and_names_no_edge_store(tmp_path: Path) -> None:
    result = run(tmp_path, "sandbox", "put", "--tenant", "acme", "sbx-nowhere")
    assert result.code == 2
    assert result.out == ""
    assert "make run" in result.err
    assert "--stack NAME" in result.err
    assert "EDGE_STORE_ARN" not in result.err


def test_a_stale_demo_json_is_an_error_that_says_the_stack_is_not_running(project: Path) -> None:
    demo_path = project / ".local" / "demo.json"
    demo = json.loads(demo_path.read_text(encoding="utf-8"))
    demo["operator_environment"]["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{free_port()}"
    demo_path.write_text(json.dumps(demo), encoding="utf-8")
    result = run(project, "tenant", "create", "stale")
    assert result.code == 2
    assert "not running" in result.err
    assert "make run" in result.err


def test_sandbox_put_for_an_unknown_tenant_is_refused(project: Path) -> None:
    result = run(project, "sandbox", "put", "--tenant", "no-such-tenant", "sbx-of-nobody")
    assert result.code == 2
    assert "no tenant no-such-tenant" in result.err
    assert ok(project, "tenant", "create", "somebody")["tenant_id"] == "somebody"
    assert "sbx-of-nobody" not in json.dumps(ok(project, "sandbox", "list", "--tenant", "somebody"))


def test_api_key_create_refuses_a_mistyped_scope_and_creates_nothing(
    stack: LocalStack, project: Path
) -> None:
    tenant = new_tenant(stack)
    before = ok(project, "api-key", "list", "--tenant", tenant.tenant_id)["keys"]
    result = run(project, "api-key", "create", "--tenant", tenant.tenant_id, "--scope", "previews:wrtie")
    assert result.code == 2
    assert "previews:wrtie" in result.err
    assert "previews:write" in result.err
    assert ok(project, "api-key", "list", "--tenant", tenant.tenant_id)["keys"] == before


def test_sandbox_list_shows_the_tenants_running_sandboxes_only(stack: LocalStack, project: Path) -> None:
    tenant = new_tenant(stack)
    ok(project, "sandbox", "delete", "--tenant", tenant.tenant_id, tenant.other_sandbox_id)
    listed = ok(project, "sandbox", "list", "--tenant", tenant.tenant_id)
    assert listed == {"sandboxes": [{"sandbox_id": tenant.sandbox_id, "status": "running"}]}
    assert run(project, "sandbox", "list", "--tenant", "no-such-tenant").code == 2


def test_api_key_list_shows_the_creation_time_and_the_label(stack: LocalStack, project: Path) -> None:
    tenant = new_tenant(stack)
    before = datetime.now(UTC)
    created = ok(project, "api-key", "create", "--tenant", tenant.tenant_id, "--label", "billing backend")
    after = datetime.now(UTC)
    listed = {
        key["key_id"]: key for key in ok(project, "api-key", "list", "--tenant", tenant.tenant_id)["keys"]
    }
    mine = listed[created["key_id"]]
    assert mine["label"] == "billing backend"
    assert ISO_UTC.match(mine["created_at"])
    assert before.replace(microsecond=0) <= datetime.fromisoformat(mine["created_at"]) <= after
    assert mine["created_at"] == created["created_at"]
    assert "api_key" not in mine


def test_revoke_tokens_prints_how_many_tokens_it_ended(stack: LocalStack, project: Path) -> None:
    tenant = new_tenant(stack)
    for _ in range(3):
        assert stack.mint(tenant.api_key, tenant.sandbox_id).status == 200
    args = ("sandbox", "revoke-tokens", "--tenant", tenant.tenant_id, tenant.sandbox_id)
    assert ok(project, *args) == {"sandbox_id": tenant.sandbox_id, "tokens_revoked": 3}
    assert ok(project, *args) == {"sandbox_id": tenant.sandbox_id, "tokens_revoked": 0}


def test_audit_list_since_and_limit_with_one_time_format(stack: LocalStack, project: Path) -> None:
    tenant = new_tenant(stack)
    first = stack.mint(tenant.api_key, tenant.sandbox_id).json()
    time.sleep(0.01)  # the next entries are strictly later than the first (millisecond times)
    second = stack.mint(tenant.api_key, tenant.sandbox_id).json()
    third = stack.mint(tenant.api_key, tenant.sandbox_id).json()

    everything = ok(project, "audit", "list", "--tenant", tenant.tenant_id)["entries"]
    assert [entry["jti"] for entry in everything] == [first["id"], second["id"], third["id"]]
    since = everything[1]["at"]
    later = ok(project, "audit", "list", "--tenant", tenant.tenant_id, "--since", since)["entries"]
    assert [entry["jti"] for entry in later] == [second["id"], third["id"]]
    last_two = ok(project, "audit", "list", "--tenant", tenant.tenant_id, "--limit", "2")["entries"]
    assert [entry["jti"] for entry in last_two] == [second["id"], third["id"]]
    for entry in everything:
        assert ISO_UTC.match(entry["at"]), entry
        assert ISO_UTC.match(entry["token_expires_at"]), entry
        assert not any(isinstance(value, int) for value in entry.values()), entry
    assert run(project, "audit", "list", "--tenant", tenant.tenant_id, "--since", "1796605200").code == 2


def test_origin_key_retire_refuses_to_break_live_sessions(stack: LocalStack, project: Path) -> None:
    keys = ok(project, "origin-key", "list")["keys"]
    newest = [key["kid"] for key in keys if key["status"] == "active"][-1]
    result = run(project, "origin-key", "retire", newest)
    assert result.code == 2
    assert "--force" in result.err
    assert ok(project, "origin-key", "list")["keys"] == keys


def test_every_help_page_has_a_description_and_examples(project: Path) -> None:
    for args in (
        ("--help",),
        ("sandbox", "--help"),
        ("audit", "list", "--help"),
        ("origin-key", "retire", "--help"),
    ):
        result = run(project, *args)
        assert result.code == 0
        assert "examples:" in result.out
        assert "``" not in result.out
