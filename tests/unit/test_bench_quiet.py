"""``make bench`` prints only its tables: what bench/quiet.py turns off."""

from __future__ import annotations

import io
import logging
import os
import warnings
from collections.abc import Iterator

import pytest
from preview_tokens import observability

from bench import quiet


@pytest.fixture
def silenced(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    for name in quiet.QUIET_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    level, root_level = observability.logger.log_level, logging.getLogger().level
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    observability.logger.addHandler(handler)
    with warnings.catch_warnings():
        quiet.silence()
        yield buffer
    observability.logger.handlers.remove(handler)
    observability.logger.setLevel(level)
    logging.getLogger().setLevel(root_level)
    for name in quiet.QUIET_ENVIRONMENT:
        os.environ.pop(name, None)  # monkeypatch restores what was there before


def test_no_info_log_line_and_no_metric_line(
    silenced: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    observability.logger.info("preview token minted")
    observability.count(observability.TOKENS_MINTED, ("Scope", "read"))

    assert silenced.getvalue() == ""
    assert capsys.readouterr().out == ""
    assert os.environ["POWERTOOLS_LOG_LEVEL"] == "ERROR"  # for the cold-start children too
