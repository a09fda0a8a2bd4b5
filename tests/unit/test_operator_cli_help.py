"""The operator CLI's help, as a platform team reads it: every command says what it does and shows
an example; no reStructuredText markup leaks into it; a mistyped scope or time is refused."""

from __future__ import annotations

import pytest
from preview_tokens.operator.operator_cli import COMMANDS, main

RESOURCES = sorted({resource for resource, _ in COMMANDS})


def help_of(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*args, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize(("resource", "action"), sorted(COMMANDS))
def test_every_command_has_a_description_and_an_example(
    capsys: pytest.CaptureFixture[str], resource: str, action: str
) -> None:
    text = help_of(capsys, resource, action)
    usage, description, *_ = text.split("\n\n")
    assert usage.startswith(f"usage: preview-tokens {resource} {action}")
    assert description.strip().endswith(".")
    assert f"examples:\n  preview-tokens {resource} {action}" in text
    assert "``" not in text


@pytest.mark.parametrize("args", [(), *((resource,) for resource in RESOURCES)])
def test_every_level_lists_its_commands_with_a_summary_and_no_markup(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    text = help_of(capsys, *args)
    assert "examples:" in text
    assert "``" not in text
    listed = {action for resource, action in COMMANDS if args and resource == args[0]} or set(RESOURCES)
    for name in listed:
        assert f"    {name}" in text


def test_the_root_help_says_where_the_cli_acts_without_any_export(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_of(capsys)
    assert ".local/demo.json" in text
    assert "--stack NAME" in text


@pytest.mark.parametrize(
    "args",
    [
        ("api-key", "create", "--tenant", "acme", "--scope", "previews:wrtie"),
        ("audit", "list", "--tenant", "acme", "--since", "1796605200"),
        ("audit", "list", "--tenant", "acme", "--since", "2026-12-07T09:00:00"),  # no zone
        ("audit", "list", "--tenant", "acme", "--limit", "0"),
    ],
)
def test_a_mistyped_argument_is_refused_before_anything_runs(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    assert exited.value.code == 2
    assert "preview-tokens" in capsys.readouterr().err
