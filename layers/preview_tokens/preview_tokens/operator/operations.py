"""The operator commands of docs/operations.md: ``smoke`` and ``bootstrap``, each with its own
options and output (a table; a JSON document), beside the resource commands of ``operator_cli``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from preview_tokens.operator import bootstrap, smoke

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "smoke": smoke.main,
    "bootstrap": bootstrap.main,
}


def add_parsers(commands: Any) -> None:
    """``commands``: the CLI's subparsers (argparse's ``_SubParsersAction``)."""
    smoke.add_parser(commands)
    bootstrap.add_parser(commands)
