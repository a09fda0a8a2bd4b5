"""``preview-local``'s command line: help, and refusing an app it cannot serve before starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from preview_local.stack import main


def test_help_exits_0_and_says_how_to_add_an_app(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])

    assert exited.value.code == 0
    shown = capsys.readouterr().out
    assert "--app ID=URL" in shown
    assert "PREVIEW_LOCAL_APPS" in shown


def test_an_unknown_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--no-such-option"])

    assert exited.value.code == 2


@pytest.mark.parametrize("spec", ["not-an-app", "sbx-other=http://127.0.0.1:5173"])
def test_an_app_that_cannot_be_served_stops_the_command_before_it_starts(
    spec: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREVIEW_LOCAL_APPS", raising=False)

    assert main(["--app", spec]) == 2
    assert "preview-local:" in capsys.readouterr().err


@pytest.mark.parametrize("content", [None, "not a certificate\n"], ids=["missing", "not-pem"])
def test_an_app_ca_file_that_cannot_be_used_stops_the_command_before_it_starts(
    content: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREVIEW_LOCAL_APPS", raising=False)
    ca_file = tmp_path / "ca.pem"
    if content is not None:
        ca_file.write_text(content, encoding="utf-8")

    assert main(["--app-ca-file", str(ca_file)]) == 2
    assert f"preview-local: the app CA file {ca_file}:" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "variable"),
    [("--app-ca-file", "PREVIEW_LOCAL_APP_CA_FILE"), ("--app-preserve-host", "PREVIEW_LOCAL_PRESERVE_HOST")],
)
def test_help_names_each_app_option_and_its_variable(
    option: str, variable: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])

    shown = capsys.readouterr().out
    assert option in shown
    assert variable in shown


def test_keeping_the_host_of_an_app_not_named_stops_the_command_before_it_starts(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREVIEW_LOCAL_APPS", raising=False)
    monkeypatch.delenv("PREVIEW_LOCAL_PRESERVE_HOST", raising=False)

    assert main(["--app", "sbx-app=http://127.0.0.1:5173", "--app-preserve-host", "sbx-other"]) == 2
    assert "preview-local: --app-preserve-host sbx-other: not an app" in capsys.readouterr().err
