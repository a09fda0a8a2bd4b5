"""A configuration that cannot work fails at start, loudly; the command line says why and exits 2."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from preview_ingress import IngressConfig, IngressConfigError
from preview_ingress.aws_credentials import CredentialChainEnvironment
from preview_ingress.cli import config_from, main, parser
from preview_tokens.data_plane.origin_assertion import PublishedOriginKey, origin_jwks, public_key_of

from tests.ingress.conftest import KID, SECRET, SEED, MemoryFeed, verifier


def config(**overrides: Any) -> IngressConfig:
    settings: dict[str, Any] = {
        "secret": SECRET,
        "verifier": verifier(),
        "revocation_feed": MemoryFeed(),
        "upstream": "http://127.0.0.1:3000",
        "sandbox_id": "sbx-one",
        **overrides,
    }
    return IngressConfig(**settings)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"secret": "short"}, "at least 16"),
        ({"next_secret": "short"}, "at least 16"),
        ({"upstream": None}, "exactly one of"),
        ({"upstream_template": "http://{sandbox}.internal"}, "exactly one of"),
        ({"sandbox_id": None}, "needs sandbox_id"),
        ({"sandbox_id": "Not A Label"}, "needs sandbox_id"),
        ({"upstream": "http://127.0.0.1:3000/app"}, "must be an origin"),
        ({"upstream": "ftp://127.0.0.1"}, "http(s) URL"),
        ({"upstream": None, "sandbox_id": None, "upstream_template": "http://fixed.internal"}, "{sandbox}"),
        ({"revocation_poll_seconds": 6}, "revocation_poll_seconds"),
        ({"revocation_feed": None}, "revocation feed is required"),
        ({"default_frame_ancestors": "'self'; script-src *"}, "one CSP source list"),
        ({"default_frame_ancestors": "https://a.example, https://b.example"}, "one CSP source list"),
        ({"default_frame_ancestors": " "}, "one CSP source list"),
    ],
)
def test_a_configuration_that_cannot_work_is_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(IngressConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config(**overrides)


def test_the_secret_never_shows_in_the_configs_repr() -> None:
    assert SECRET not in repr(config(next_secret=SECRET[::-1]))
    assert SECRET[::-1] not in repr(config(next_secret=SECRET[::-1]))


def test_the_template_and_the_resolver_find_each_sandbox() -> None:
    template = config(upstream=None, sandbox_id=None, upstream_template="http://{sandbox}.internal:8080/")
    resolver = config(upstream=None, sandbox_id=None, upstream_resolver={"sbx-a": "http://10.0.0.7:80"}.get)

    assert template.upstream_for("sbx-a") == "http://sbx-a.internal:8080"
    assert resolver.upstream_for("sbx-a") == "http://10.0.0.7:80"
    assert resolver.upstream_for("sbx-b") is None


def test_the_command_line_without_a_secret_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "origin-keys.json"
    keys.write_text(json.dumps(origin_jwks([PublishedOriginKey(KID, public_key_of(SEED))])))
    monkeypatch.delenv("PREVIEW_INGRESS_SECRET", raising=False)

    where = ["--upstream", "http://127.0.0.1:3000", "--sandbox", "sbx-one", "--jwks-file", str(keys)]
    monkeypatch.setattr(logging, "logThreads", True)
    handlers = list(logging.getLogger().handlers)
    status = main([*where, "--audience", "https://ingress.fleet.example", "--no-revocations"])

    assert status == 2
    assert "PREVIEW_INGRESS_SECRET" in capsys.readouterr().err
    # A refused start leaves the process's logging as it was (the command can be run in-process).
    assert logging.getLogger().handlers == handlers
    assert logging.logThreads is True


@pytest.mark.parametrize(
    ("ports", "message"),
    [
        (["--port", "99999"], "a port is 0-65535, not 99999"),
        (["--admin-port", "-1"], "a port is 0-65535, not -1"),
        (["--port", "http"], "not a port number"),
        (["--port", "9090", "--admin-port", "9090"], "--port and --admin-port are both 9090"),
    ],
)
def test_a_port_that_cannot_be_is_refused_before_anything_starts(
    ports: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ["--upstream", "http://127.0.0.1:3000", "--sandbox", "sbx-one", "--jwks-url", "http://x/"]
    with pytest.raises(SystemExit) as exit_status:
        main([*where, "--audience", "https://ingress.fleet.example", "--no-revocations", *ports])

    assert exit_status.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "preserve_host", "keep_app_cookies"),
    [([], False, False), (["--preserve-host"], True, False), (["--keep-app-cookies"], False, True)],
)
def test_the_command_lines_relay_flags_reach_the_config(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    flags: list[str],
    preserve_host: bool,
    keep_app_cookies: bool,
) -> None:
    keys = tmp_path / "origin-keys.json"
    keys.write_text(json.dumps(origin_jwks([PublishedOriginKey(KID, public_key_of(SEED))])))
    monkeypatch.setenv("PREVIEW_INGRESS_SECRET", SECRET)
    where = ["--upstream", "http://127.0.0.1:3000", "--sandbox", "sbx-one", "--jwks-file", str(keys)]

    args = parser().parse_args(
        [*where, "--audience", "https://ingress.fleet.example", "--no-revocations", *flags]
    )
    built = config_from(args)

    assert (built.preserve_host, built.keep_app_cookies) == (preserve_host, keep_app_cookies)


def test_the_command_line_names_the_sandboxes_that_keep_the_viewers_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = tmp_path / "origin-keys.json"
    keys.write_text(json.dumps(origin_jwks([PublishedOriginKey(KID, public_key_of(SEED))])))
    monkeypatch.setenv("PREVIEW_INGRESS_SECRET", SECRET)
    shared = ["--upstream-template", "http://{sandbox}.internal:8080", "--jwks-file", str(keys)]
    shared += ["--audience", "https://ingress.fleet.example", "--no-revocations"]

    built = config_from(
        parser().parse_args([*shared, "--preserve-host-for", "rails-*", "--preserve-host-for", "sbx-legacy"])
    )

    assert built.preserve_host_for == ("rails-*", "sbx-legacy")
    assert [built.preserves_host(name) for name in ("rails-1", "sbx-legacy", "sbx-legacy-2", "vite-1")] == [
        True,
        True,
        False,
        False,
    ]
    with pytest.raises(IngressConfigError, match="pattern is empty"):
        config_from(parser().parse_args([*shared, "--preserve-host-for", ""]))


@pytest.fixture
def no_ambient_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Nothing of this machine's AWS setup, and no instance metadata lookups."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_REGION", "eu-west-2")
    return tmp_path


def test_the_revocation_feed_signs_with_credentials_from_a_profile_not_only_the_environment(
    no_ambient_aws: Path,
) -> None:
    (no_ambient_aws / "credentials").write_text(
        "[default]\naws_access_key_id = AKIDFROMPROFILE\naws_secret_access_key = secret-from-profile\n"
    )

    env = CredentialChainEnvironment()

    assert env["AWS_ACCESS_KEY_ID"] == "AKIDFROMPROFILE"
    assert env["AWS_SECRET_ACCESS_KEY"] == "secret-from-profile"
    assert env.get("AWS_SESSION_TOKEN") is None
    assert env["AWS_REGION"] == "eu-west-2"


def test_environment_credentials_still_come_first(
    no_ambient_aws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-from-env")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-from-env")

    env = CredentialChainEnvironment()

    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SESSION_TOKEN"]) == ("AKIDFROMENV", "session-from-env")
